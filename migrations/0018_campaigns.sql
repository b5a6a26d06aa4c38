-- Campaigns: bulk outbound calls to a contact list, paced (calls per minute, concurrent calls)
-- and held to a calling window on each contact's clocks. The scheduler's tick claims due
-- contacts (pending -> in_progress with a fresh `claim`) and, in the same batch, creates or
-- re-schedules the contact's call; the dispatcher dials it like any scheduled call.
CREATE TABLE campaigns (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  agent_id TEXT NOT NULL,
  name TEXT NOT NULL,
  -- active | paused | completed | canceled
  status TEXT NOT NULL DEFAULT 'active',
  -- {days, from, to, time_zone}: the window as the core's campaigns::Window shows it
  window TEXT NOT NULL,
  calls_per_minute INTEGER NOT NULL,
  max_concurrent INTEGER NOT NULL,
  provider TEXT NOT NULL,
  from_number TEXT,
  base_url TEXT NOT NULL,
  -- Rows read from the list: dialled contacts and rows that could not be (invalid, duplicate).
  total_rows INTEGER NOT NULL,
  invalid_rows INTEGER NOT NULL,
  -- When the scheduler next looks at the campaign (a closed window moves it to the opening).
  next_tick_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER
);
CREATE INDEX campaigns_due ON campaigns (status, next_tick_at);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, created_at, id);

CREATE TABLE campaign_contacts (
  id INTEGER PRIMARY KEY,
  -- No foreign key: the import writes the rows before their campaign (which comes last, so a
  -- campaign exists only with all its rows).
  campaign_id TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  -- CSV line the row starts on (header = 1), or 1-based position in a JSON list
  line INTEGER NOT NULL,
  -- E.164; NULL for a row that cannot be dialled (its input is in given_phone)
  phone TEXT,
  given_phone TEXT,
  name TEXT,
  email TEXT,
  time_zone TEXT,
  -- the row's other columns: {"column": "value"}
  vars TEXT NOT NULL DEFAULT '{}',
  -- pending | in_progress | completed | no_answer | failed | opted_out | canceled | invalid
  status TEXT NOT NULL,
  error_code TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  call_id TEXT,
  -- the tick that claimed the current attempt (its call is written only under this claim)
  claim TEXT,
  last_dial_at INTEGER,
  updated_at INTEGER NOT NULL,
  UNIQUE (campaign_id, phone)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, status, next_attempt_at);
CREATE INDEX campaign_contacts_line ON campaign_contacts (campaign_id, line);
CREATE INDEX campaign_contacts_dials ON campaign_contacts (campaign_id, last_dial_at);
CREATE INDEX campaign_contacts_call ON campaign_contacts (call_id);
