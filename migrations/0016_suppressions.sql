-- Numbers a tenant must not message or call (STOP keywords, operators).
CREATE TABLE suppressions (
  tenant_id TEXT NOT NULL,
  phone TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, phone)
);
