-- Post-call analysis (the agent's `analysis` setting): the result as JSON (`{status, values,
-- success, success_reason, errors, raw}`) and its status (`ok`, `invalid`, `failed`) as a column
-- of its own, so a call list can be narrowed to valid analyses without reading every result.
ALTER TABLE calls ADD COLUMN analysis TEXT;
ALTER TABLE calls ADD COLUMN analysis_status TEXT;
CREATE INDEX calls_analysis_status ON calls (tenant_id, analysis_status) WHERE analysis_status IS NOT NULL;
