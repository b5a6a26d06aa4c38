-- Per-call variables and reminders.

-- The declared contact fields of a scheduled call (`contact: {company: …}` beyond name and
-- email), a JSON object of strings, filled into the agent's prompt and greeting at call time.
ALTER TABLE calls ADD COLUMN contact_fields TEXT;

-- Reminders before a scheduled call: one row per (call, channel, offset), planned when the call
-- is scheduled, moved when it is rescheduled, cancelled with it. The sweep hands a due row to
-- its channel's outbox (an `emails` row of kind `reminder`) only while the call is still
-- scheduled for `start_at`; the outbox sends and retries it like every other email.
CREATE TABLE reminders (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants(id),
  subject         TEXT NOT NULL DEFAULT 'call' CHECK (subject IN ('call', 'appointment')),
  call_id         TEXT NOT NULL REFERENCES calls(id),
  channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
  before_minutes  INTEGER NOT NULL,
  start_at        INTEGER NOT NULL,              -- the start this reminder is for
  due_at          INTEGER NOT NULL,              -- start_at - before_minutes
  -- pending (waiting) | queued (handed to the outbox) | skipped (its time had passed when
  -- planned, or the call had moved on when due) | cancelled (with its call)
  status          TEXT NOT NULL CHECK (status IN ('pending', 'queued', 'skipped', 'cancelled')),
  email_id        TEXT,                          -- the outbox row it became
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  UNIQUE (call_id, channel, before_minutes)
);
CREATE INDEX reminders_due ON reminders (status, due_at);

-- The email outbox learns the `reminder` kind (SQLite changes a CHECK only by copying the table).
CREATE TABLE emails_new (
  id                   TEXT PRIMARY KEY,
  tenant_id            TEXT NOT NULL REFERENCES tenants(id),
  call_id              TEXT NOT NULL REFERENCES calls(id),
  kind                 TEXT NOT NULL CHECK (kind IN ('scheduled', 'rescheduled', 'canceled', 'reminder')),
  sequence             INTEGER NOT NULL,
  idempotency_key      TEXT NOT NULL UNIQUE,
  to_email             TEXT NOT NULL,
  request              TEXT NOT NULL,
  status               TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'sent', 'dead', 'superseded')),
  attempts             INTEGER NOT NULL DEFAULT 0,
  next_attempt_at      INTEGER,
  locked_until         INTEGER,
  last_status_code     INTEGER,
  last_error           TEXT,
  provider_message_id  TEXT,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
INSERT INTO emails_new SELECT id, tenant_id, call_id, kind, sequence, idempotency_key, to_email,
  request, status, attempts, next_attempt_at, locked_until, last_status_code, last_error,
  provider_message_id, created_at, updated_at FROM emails;
DROP TABLE emails;
ALTER TABLE emails_new RENAME TO emails;
CREATE INDEX emails_due ON emails (status, next_attempt_at);
CREATE INDEX emails_call ON emails (call_id, created_at);
