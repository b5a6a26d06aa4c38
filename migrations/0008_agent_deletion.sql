-- Agents are deleted softly: finished calls keep their agent_id (a foreign key to this table);
-- every read of an agent through the store skips deleted rows.
ALTER TABLE agents ADD COLUMN deleted_at INTEGER;
