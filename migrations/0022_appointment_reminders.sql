-- Reminders before appointments too: a row is about exactly one call or one appointment, so
-- `call_id` becomes nullable beside a new `appointment_id` (SQLite changes a column's
-- constraints only by copying the table). Planned with the booking, moved with a reschedule,
-- cancelled with a cancellation, all in the batch that changes the appointment.
CREATE TABLE reminders_new (
  id              TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants(id),
  subject         TEXT NOT NULL DEFAULT 'call' CHECK (subject IN ('call', 'appointment')),
  call_id         TEXT REFERENCES calls(id),
  appointment_id  TEXT REFERENCES appointments(id),
  channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
  before_minutes  INTEGER NOT NULL,
  start_at        INTEGER NOT NULL,
  due_at          INTEGER NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('pending', 'queued', 'skipped', 'cancelled')),
  email_id        TEXT,
  message_id      TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  UNIQUE (call_id, channel, before_minutes),
  UNIQUE (appointment_id, channel, before_minutes),
  CHECK ((call_id IS NULL) != (appointment_id IS NULL)),
  CHECK ((subject = 'call') = (call_id IS NOT NULL))
);
INSERT INTO reminders_new (id, tenant_id, subject, call_id, channel, before_minutes, start_at,
    due_at, status, email_id, message_id, created_at, updated_at)
  SELECT id, tenant_id, subject, call_id, channel, before_minutes, start_at, due_at, status,
    email_id, message_id, created_at, updated_at FROM reminders;
DROP TABLE reminders;
ALTER TABLE reminders_new RENAME TO reminders;
CREATE INDEX reminders_due ON reminders (status, due_at);
