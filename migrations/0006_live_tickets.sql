-- Single-use tickets for the live-view WebSocket (POST /api/v1/calls/{id}/live-ticket): a
-- browser cannot send an Authorization header on a WebSocket, and API keys in URLs end up in
-- access logs. Only the SHA-256 of a ticket is stored; `used_at` makes it single use.
CREATE TABLE live_tickets (
  ticket_hash  TEXT PRIMARY KEY,
  call_id      TEXT NOT NULL,
  tenant_id    TEXT NOT NULL REFERENCES tenants(id),
  role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  actor        TEXT NOT NULL,                 -- the issuing key's id, or 'admin' (bootstrap)
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  used_at      INTEGER
);
CREATE INDEX live_tickets_expires ON live_tickets (expires_at);
