-- Business hours of a number (JSON, validated by the core: time zone, weekly ranges, dated
-- exceptions) and the agent answering after hours; NULL: always routed as during hours.
ALTER TABLE phone_numbers ADD COLUMN hours TEXT;
ALTER TABLE phone_numbers ADD COLUMN after_hours_agent_id TEXT;
-- How an incoming call was routed: open, closed_weekly, closed_exception or no_hours (NULL for
-- calls no number routed: outbound calls, and inbound calls from before this column).
ALTER TABLE calls ADD COLUMN routing TEXT;
