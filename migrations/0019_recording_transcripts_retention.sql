-- Recordings, finished: the transcription step of the same durable job (its provider and model
-- copied from the call's agent when the recording is queued), and retention: a tenant's own
-- period (NULL: RECORDING_RETENTION_DAYS) after which the cron deletes the R2 object and marks
-- the row `deleted` (status pending | stored | dead | deleted).
ALTER TABLE recordings ADD COLUMN transcription TEXT;
ALTER TABLE recordings ADD COLUMN transcription_model TEXT;
-- NULL (not asked) | pending | done | failed
ALTER TABLE recordings ADD COLUMN transcription_status TEXT;
ALTER TABLE recordings ADD COLUMN transcription_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN transcription_error TEXT;
-- JSON {provider, model, text, utterances: [{start, end, text, speaker}]}
ALTER TABLE recordings ADD COLUMN transcript TEXT;
ALTER TABLE recordings ADD COLUMN transcribed_at INTEGER;
ALTER TABLE recordings ADD COLUMN deleted_at INTEGER;
CREATE INDEX recordings_transcription_due ON recordings (transcription_status, next_attempt_at);
CREATE INDEX recordings_stored ON recordings (status, created_at);
ALTER TABLE tenants ADD COLUMN recording_retention_days REAL;
