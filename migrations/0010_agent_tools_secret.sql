-- The secret an agent's HTTP tools are signed with (Standard Webhooks, like endpoint deliveries):
-- one per agent, made when the agent is created, shown to admins, rotated on request. Agents
-- made before this column get theirs at their first rotation; until then their tools refuse to run.
ALTER TABLE agents ADD COLUMN tools_secret TEXT;
