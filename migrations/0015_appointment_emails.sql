-- Appointment invites through the email outbox: an appointment keeps the caller's address, and
-- an email belongs to either a call or an appointment (exactly one). SQLite cannot relax NOT
-- NULL in place, so the outbox is rebuilt with its rows and indexes; nothing references it.
ALTER TABLE appointments ADD COLUMN email TEXT;

CREATE TABLE emails_new (
  id                   TEXT PRIMARY KEY,
  tenant_id            TEXT NOT NULL REFERENCES tenants(id),
  call_id              TEXT REFERENCES calls(id),
  appointment_id       TEXT REFERENCES appointments(id),
  kind                 TEXT NOT NULL CHECK (kind IN ('scheduled', 'rescheduled', 'canceled')),
  sequence             INTEGER NOT NULL,            -- the invite's SEQUENCE
  idempotency_key      TEXT NOT NULL UNIQUE,        -- Resend Idempotency-Key, per (subject, change, sequence)
  to_email             TEXT NOT NULL,
  request              TEXT NOT NULL,               -- the exact JSON body; retries resend it unchanged
  status               TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'sent', 'dead', 'superseded')),
  attempts             INTEGER NOT NULL DEFAULT 0,
  next_attempt_at      INTEGER,
  locked_until         INTEGER,
  last_status_code     INTEGER,
  last_error           TEXT,
  provider_message_id  TEXT,                        -- Resend's email id once sent
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  CHECK ((call_id IS NULL) != (appointment_id IS NULL))
);
INSERT INTO emails_new (id, tenant_id, call_id, kind, sequence, idempotency_key, to_email, request,
    status, attempts, next_attempt_at, locked_until, last_status_code, last_error,
    provider_message_id, created_at, updated_at)
  SELECT id, tenant_id, call_id, kind, sequence, idempotency_key, to_email, request,
    status, attempts, next_attempt_at, locked_until, last_status_code, last_error,
    provider_message_id, created_at, updated_at FROM emails;
DROP TABLE emails;
ALTER TABLE emails_new RENAME TO emails;
CREATE INDEX emails_due ON emails (status, next_attempt_at);
CREATE INDEX emails_call ON emails (call_id, created_at);
CREATE INDEX emails_appointment ON emails (appointment_id, created_at) WHERE appointment_id IS NOT NULL;
