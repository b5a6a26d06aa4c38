-- A carrier call answered with a media stream that never connects used to stay `in_progress`
-- (or `ringing`) forever. The deadline is armed when the carrier reports the call answered (or
-- when the AI takes over from the owner's phone) and cleared when a verified stream takes the
-- call; the scheduler hangs up and fails calls past it (`stream_timeout`).
ALTER TABLE calls ADD COLUMN stream_deadline_at INTEGER;
ALTER TABLE calls ADD COLUMN stream_connected_at INTEGER;
-- The owner's phone rings first (`<Dial>`): no stream is expected while it does.
ALTER TABLE calls ADD COLUMN owner_ringing INTEGER NOT NULL DEFAULT 0;
CREATE INDEX calls_stream_deadline ON calls (stream_deadline_at) WHERE stream_deadline_at IS NOT NULL;
