-- Text messages: outbound ones are a durable outbox (leased, attempted and retried by the
-- scheduler like emails and recordings); inbound ones are kept for the list. One row per
-- carrier message: a replayed webhook finds the row it already made.
CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  -- outbound | inbound
  direction TEXT NOT NULL,
  -- message (API) | confirmation (a scheduled call booked) | keyword_reply (STOP/START/HELP)
  kind TEXT NOT NULL,
  -- twilio | telnyx
  provider TEXT NOT NULL,
  from_number TEXT NOT NULL,
  to_number TEXT NOT NULL,
  body TEXT NOT NULL,
  call_id TEXT,
  -- outbound: pending (to send) | sent (the carrier took it) | delivered | failed | skipped
  -- (the recipient opted out before it went) | dead (the carrier refused it or retries ran
  -- out); inbound: received
  status TEXT NOT NULL,
  provider_message_id TEXT,
  -- Where the carrier reports delivery (our origin when queued).
  base_url TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  locked_until INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX messages_provider_id ON messages (provider, provider_message_id);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_tenant ON messages (tenant_id, created_at, id);
