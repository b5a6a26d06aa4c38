-- Endpoints are soft-deleted: their past deliveries keep pointing at them (foreign key), but a
-- deleted endpoint is hidden from the API and receives nothing.
ALTER TABLE endpoints ADD COLUMN deleted_at INTEGER;

-- Attempts in the current retry series; a replay or redrive starts a new series (the schedule
-- applies again) while `attempts` keeps counting every try for the attempt log.
ALTER TABLE deliveries ADD COLUMN series_attempts INTEGER NOT NULL DEFAULT 0;
