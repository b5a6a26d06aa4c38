-- Call scheduling: what dispatch needs on the call row, and the outbox of confirmation emails.

-- How carriers reach this worker, fixed when the call is scheduled: an alarm has no request
-- whose origin could stand in for PUBLIC_BASE_URL.
ALTER TABLE calls ADD COLUMN base_url TEXT;
-- Lease on handing a Bland call to Bland (submit / resubmit), so the API request and the
-- scheduler never submit the same attempt at once.
ALTER TABLE calls ADD COLUMN locked_until INTEGER;
-- Why the last dispatch (or Bland submission) failed, shown on the call.
ALTER TABLE calls ADD COLUMN last_error TEXT;

-- Emails to send through Resend: one row per (call, kind, sequence). Sent and retried exactly
-- like webhook deliveries (same retry policy, same lease, same Scheduler), so a Resend outage
-- never loses the schedule: the call stays scheduled and the email goes out later.
CREATE TABLE emails (
  id                   TEXT PRIMARY KEY,
  tenant_id            TEXT NOT NULL REFERENCES tenants(id),
  call_id              TEXT NOT NULL REFERENCES calls(id),
  kind                 TEXT NOT NULL CHECK (kind IN ('scheduled', 'rescheduled', 'canceled')),
  sequence             INTEGER NOT NULL,            -- the invite's SEQUENCE
  idempotency_key      TEXT NOT NULL UNIQUE,        -- Resend Idempotency-Key, per (call, sequence)
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
  updated_at           INTEGER NOT NULL
);
CREATE INDEX emails_due ON emails (status, next_attempt_at);
CREATE INDEX emails_call ON emails (call_id, created_at);
