-- Call recordings: one row per carrier recording, the durable job that copies its audio into R2
-- (binding RECORDINGS), retried with backoff by the scheduler until stored or dead.
CREATE TABLE recordings (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  call_id TEXT NOT NULL REFERENCES calls(id),
  provider TEXT NOT NULL,
  provider_recording_id TEXT NOT NULL,
  -- The carrier URL the audio is fetched from (checked against the carrier API when queued).
  media_url TEXT NOT NULL,
  duration_seconds INTEGER,
  -- pending (to fetch) | stored | dead
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  locked_until INTEGER,
  last_error TEXT,
  r2_key TEXT,
  content_type TEXT,
  size_bytes INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (provider, provider_recording_id)
);
CREATE INDEX recordings_due ON recordings (status, next_attempt_at);
CREATE INDEX recordings_call ON recordings (tenant_id, call_id, created_at);
