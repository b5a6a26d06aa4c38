-- phone-agent schema. Times are INTEGER milliseconds since the Unix epoch (UTC), so due-time
-- comparisons are plain integer compares; the API renders them as RFC 3339.
-- Every tenant-owned row carries tenant_id, and every list query filters on it first.

CREATE TABLE tenants (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);

-- Until operators create their own tenants, everything belongs to this one (ADMIN_API_KEY's).
INSERT INTO tenants (id, name, created_at) VALUES ('ten_default', 'default', 0);

CREATE TABLE api_keys (
  id            TEXT PRIMARY KEY,
  tenant_id     TEXT NOT NULL REFERENCES tenants(id),
  name          TEXT NOT NULL,
  role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  key_hash      TEXT NOT NULL UNIQUE,           -- sha256 hex; the key itself is shown once
  prefix        TEXT NOT NULL,                  -- first characters, to recognise a key in lists
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE agents (
  id             TEXT PRIMARY KEY,
  tenant_id      TEXT NOT NULL REFERENCES tenants(id),
  name           TEXT NOT NULL,
  system_prompt  TEXT NOT NULL,
  first_message  TEXT,
  config         TEXT NOT NULL DEFAULT '{}',    -- JSON: voice, llm, stt, tools, idle/max duration, retry policy
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE INDEX agents_tenant ON agents (tenant_id, created_at);

CREATE TABLE phone_numbers (
  id                TEXT PRIMARY KEY,
  tenant_id         TEXT NOT NULL REFERENCES tenants(id),
  number            TEXT NOT NULL UNIQUE,         -- E.164; one owner across tenants
  agent_id          TEXT NOT NULL REFERENCES agents(id),
  owner_phone       TEXT,
  ring_owner_first  INTEGER NOT NULL DEFAULT 0,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE INDEX phone_numbers_tenant ON phone_numbers (tenant_id, created_at);
CREATE INDEX phone_numbers_agent ON phone_numbers (agent_id);

CREATE TABLE calls (
  id                TEXT PRIMARY KEY,
  tenant_id         TEXT NOT NULL REFERENCES tenants(id),
  agent_id          TEXT REFERENCES agents(id),
  direction         TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  provider          TEXT NOT NULL,                -- bland | twilio | telnyx | exotel
  provider_call_id  TEXT,                         -- CallSid, call_control_id, Bland call_id
  status            TEXT NOT NULL,
  to_number         TEXT NOT NULL,
  from_number       TEXT,
  start_at          INTEGER,                      -- scheduled start (outbound)
  time_zone         TEXT,                         -- IANA name the user gave, for emails
  contact_name      TEXT,
  contact_email     TEXT,
  metadata          TEXT NOT NULL DEFAULT '{}',
  attempt           INTEGER NOT NULL DEFAULT 1,   -- no-answer/busy retries bump it
  stream_token      TEXT,                         -- per-call secret the media stream must present
  ics_sequence      INTEGER NOT NULL DEFAULT 0,
  email_status      TEXT,                         -- pending | sent | failed (last error in history)
  idempotency_key   TEXT,
  request_hash      TEXT,
  dispatched_at     INTEGER,
  answered_at       INTEGER,
  ended_at          INTEGER,
  duration_seconds  INTEGER,
  summary           TEXT,
  metrics           TEXT,                         -- JSON per-turn latency figures
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  UNIQUE (tenant_id, idempotency_key)
);
CREATE UNIQUE INDEX calls_provider_call ON calls (provider, provider_call_id)
  WHERE provider_call_id IS NOT NULL;
CREATE INDEX calls_due ON calls (status, start_at);
CREATE INDEX calls_tenant ON calls (tenant_id, created_at, id);

-- Status history of a call: one row per transition (and notable non-transitions: email, retries).
CREATE TABLE call_events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  call_id      TEXT NOT NULL REFERENCES calls(id),
  at           INTEGER NOT NULL,
  kind         TEXT NOT NULL,                     -- status | email | dispatch | retry | note
  from_status  TEXT,
  to_status    TEXT,
  source       TEXT NOT NULL,                     -- api | webhook:<provider> | scheduler | session
  detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX call_events_call ON call_events (call_id, id);

CREATE TABLE transcripts (
  call_id     TEXT PRIMARY KEY REFERENCES calls(id),
  tenant_id   TEXT NOT NULL REFERENCES tenants(id),
  turns       TEXT NOT NULL,                      -- JSON array of {role, text, at, metrics?}
  text        TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);

-- Every accepted inbound event, raw and canonical, written before the provider gets its 2xx.
CREATE TABLE webhook_events (
  id                 TEXT PRIMARY KEY,             -- evt_…; also the outbound webhook-id
  tenant_id          TEXT NOT NULL REFERENCES tenants(id),
  provider           TEXT NOT NULL,
  provider_event_id  TEXT NOT NULL,                -- dedupe key
  type               TEXT NOT NULL,
  call_id            TEXT,
  received_at        INTEGER NOT NULL,
  content_type       TEXT,
  raw_body           TEXT NOT NULL,
  payload            TEXT NOT NULL,                -- canonical envelope body, as forwarded
  UNIQUE (provider, provider_event_id)
);
CREATE INDEX webhook_events_tenant ON webhook_events (tenant_id, received_at, id);
CREATE INDEX webhook_events_type ON webhook_events (tenant_id, type, received_at);
CREATE INDEX webhook_events_call ON webhook_events (call_id);

CREATE TABLE endpoints (
  id                          TEXT PRIMARY KEY,
  tenant_id                   TEXT NOT NULL REFERENCES tenants(id),
  url                         TEXT NOT NULL,
  description                 TEXT,
  secret                      TEXT NOT NULL,     -- whsec_…
  previous_secret             TEXT,              -- still signs until previous_secret_expires_at
  previous_secret_expires_at  INTEGER,
  event_types                 TEXT,              -- JSON array; NULL = every type
  status                      TEXT NOT NULL DEFAULT 'enabled'
                              CHECK (status IN ('enabled', 'paused', 'disabled')),
  disabled_reason             TEXT,
  created_at                  INTEGER NOT NULL,
  updated_at                  INTEGER NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant_id, created_at);

-- One row per (event, endpoint); the attempts table keeps every try.
CREATE TABLE deliveries (
  id                TEXT PRIMARY KEY,
  tenant_id         TEXT NOT NULL REFERENCES tenants(id),
  event_id          TEXT NOT NULL REFERENCES webhook_events(id),
  endpoint_id       TEXT NOT NULL REFERENCES endpoints(id),
  status            TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'dead', 'canceled')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  first_attempt_at  INTEGER,
  next_attempt_at   INTEGER,                     -- NULL when nothing is due
  locked_until      INTEGER,                     -- lease: overlapping senders never double-send
  last_status_code  INTEGER,
  last_response     TEXT,
  last_error        TEXT,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, created_at, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, status);

CREATE TABLE delivery_attempts (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id       TEXT NOT NULL REFERENCES deliveries(id),
  attempt           INTEGER NOT NULL,
  at                INTEGER NOT NULL,
  status_code       INTEGER,
  latency_ms        INTEGER,
  response_excerpt  TEXT,
  error             TEXT,
  UNIQUE (delivery_id, attempt)
);

CREATE TABLE audit_log (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id      TEXT NOT NULL REFERENCES tenants(id),
  actor          TEXT NOT NULL,                  -- api key id, or 'admin' for ADMIN_API_KEY
  action         TEXT NOT NULL,                  -- e.g. endpoint.create
  resource_type  TEXT NOT NULL,
  resource_id    TEXT,
  before         TEXT,
  after          TEXT,
  request_id     TEXT NOT NULL,
  at             INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, at, id);
