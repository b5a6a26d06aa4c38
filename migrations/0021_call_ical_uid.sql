-- Calls imported from an iCalendar file (POST /api/v1/calls with a text/calendar body) keep the
-- event's UID: importing the same UID again updates that call instead of adding another. The
-- unique index makes a second call with one tenant's UID impossible, whatever races; calls
-- scheduled from JSON have none (NULLs never collide).
ALTER TABLE calls ADD COLUMN ical_uid TEXT;
CREATE UNIQUE INDEX calls_tenant_ical_uid ON calls (tenant_id, ical_uid) WHERE ical_uid IS NOT NULL;
