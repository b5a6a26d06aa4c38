CREATE TABLE events (
  id TEXT PRIMARY KEY,          -- svix-id
  type TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
