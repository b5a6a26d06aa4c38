-- Toll-fraud limits: call backs (one per call, a daily cap per number) and a per-tenant cap on
-- outbound dials per hour. Each limit is a guarded INSERT counted in one statement, so two
-- concurrent requests can never both pass a limit that only one of them fits under.

-- One row per call back scheduled by the `schedule_callback` tool. The originating call is the
-- key (one call back per call); (tenant, number, created_at) counts the per-number daily cap.
CREATE TABLE callbacks (
  source_call_id  TEXT PRIMARY KEY REFERENCES calls(id),
  tenant_id       TEXT NOT NULL REFERENCES tenants(id),
  to_number       TEXT NOT NULL,
  call_id         TEXT NOT NULL REFERENCES calls(id),   -- the call back
  created_at      INTEGER NOT NULL
);
CREATE INDEX callbacks_number ON callbacks (tenant_id, to_number, created_at);

-- One row per outbound dial attempt we place (API calls, call backs, retries): the per-tenant
-- hourly cap counts these. (call, attempt) is the key, so the alarm and the cron racing for
-- the same attempt take one slot.
CREATE TABLE outbound_dials (
  call_id    TEXT NOT NULL REFERENCES calls(id),
  attempt    INTEGER NOT NULL,
  tenant_id  TEXT NOT NULL REFERENCES tenants(id),
  at         INTEGER NOT NULL,
  PRIMARY KEY (call_id, attempt)
);
CREATE INDEX outbound_dials_tenant ON outbound_dials (tenant_id, at);

-- A due call deferred by the hourly cap waits until then; `start_at` keeps the time asked for.
ALTER TABLE calls ADD COLUMN dial_after INTEGER;
