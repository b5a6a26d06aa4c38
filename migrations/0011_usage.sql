-- Usage, cost and quotas. A call's usage is written once by its end-of-call job; the same
-- batch adds it to the tenant's day, guarded by `counted`, so a retried step never counts twice.
CREATE TABLE call_usage (
  call_id                TEXT PRIMARY KEY REFERENCES calls(id),
  tenant_id              TEXT NOT NULL REFERENCES tenants(id),
  day                    TEXT NOT NULL,              -- UTC YYYY-MM-DD the call ended
  carrier_seconds        INTEGER NOT NULL,
  stt_ms                 INTEGER NOT NULL,
  llm_prompt_tokens      INTEGER NOT NULL,
  llm_completion_tokens  INTEGER NOT NULL,
  tts_chars              INTEGER NOT NULL,
  tool_calls             INTEGER NOT NULL,
  counted                INTEGER NOT NULL DEFAULT 0, -- 1 once added to usage_daily
  created_at             INTEGER NOT NULL
);

-- The tenant's usage per UTC day (the usage API and the monthly-minutes quota read this).
CREATE TABLE usage_daily (
  tenant_id              TEXT NOT NULL REFERENCES tenants(id),
  day                    TEXT NOT NULL,
  calls                  INTEGER NOT NULL,
  carrier_seconds        INTEGER NOT NULL,
  carrier_minutes        INTEGER NOT NULL,           -- started minutes, summed per call
  stt_ms                 INTEGER NOT NULL,
  llm_prompt_tokens      INTEGER NOT NULL,
  llm_completion_tokens  INTEGER NOT NULL,
  tts_chars              INTEGER NOT NULL,
  tool_calls             INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day)
);

-- A tenant's own quotas (NULL: the deployment's QUOTA_* default; 0: unlimited).
ALTER TABLE tenants ADD COLUMN max_concurrent_calls INTEGER;
ALTER TABLE tenants ADD COLUMN monthly_minutes INTEGER;
