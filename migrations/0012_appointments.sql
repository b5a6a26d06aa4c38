-- Appointments booked by an agent with a calendar (find_slots / book_appointment).
-- Bookings start on the agent's slot grid (checked before the insert), so two appointments of
-- one agent either share slot_start or do not overlap; the partial unique index then makes a
-- double booking impossible, however many calls race for a slot. A canceled row frees its slot.
CREATE TABLE appointments (
  id             TEXT PRIMARY KEY,
  tenant_id      TEXT NOT NULL REFERENCES tenants(id),
  agent_id       TEXT NOT NULL,
  call_id        TEXT,                          -- the call that booked it, if any
  slot_start     INTEGER NOT NULL,
  slot_end       INTEGER NOT NULL,
  time_zone      TEXT NOT NULL,                 -- the calendar's zone when booked
  status         TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'canceled')),
  caller_number  TEXT,
  name           TEXT,
  note           TEXT,
  sequence       INTEGER NOT NULL DEFAULT 0,    -- bumped by every change (iCalendar SEQUENCE)
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX appointments_slot ON appointments (tenant_id, agent_id, slot_start)
  WHERE status != 'canceled';
CREATE INDEX appointments_tenant ON appointments (tenant_id, created_at);
CREATE INDEX appointments_call ON appointments (call_id) WHERE call_id IS NOT NULL;
