// DELETE /api/v1/agents/{id}: refused with 409 agent_in_use while a number answers with the
// agent or one of its calls is not finished; otherwise the agent is gone from every read (its
// finished calls keep their agent_id), and the deletion is in the audit log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, UNDIALLED_TWILIO } from './harness.mjs';

let worker;
let other;

before(async () => {
  worker = await startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15550009999', PUBLIC_BASE_URL: 'https://agent.example.com', ...UNDIALLED_TWILIO } });
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  other = tenant.body.api_key.key;
});
after(async () => {
  await worker?.stop();
});

const inHours = (h) => new Date(Date.now() + h * 3_600_000).toISOString();

async function newAgent(name, key) {
  const res = await worker.api('POST', '/api/v1/agents', { name, system_prompt: 'Be brief.' }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  return res.body;
}

test('unknown agents and other tenants\' agents are 404; a viewer key is 403', async () => {
  assert.equal((await worker.api('DELETE', '/api/v1/agents/agt_nosuchagent')).status, 404);
  const theirs = await newAgent('Theirs', other);
  const res = await worker.api('DELETE', `/api/v1/agents/${theirs.id}`);
  assert.equal(res.status, 404, res.text);
  assert.equal(res.body.error.code, 'not_found');
  assert.equal((await worker.api('GET', `/api/v1/agents/${theirs.id}`, undefined, { key: other })).status, 200, 'still there for its tenant');
  const viewer = (await worker.api('POST', '/api/v1/api-keys', { name: 'ro', role: 'viewer' })).body.key;
  const mine = await newAgent('Mine');
  const refused = await worker.api('DELETE', `/api/v1/agents/${mine.id}`, undefined, { key: viewer });
  assert.equal(refused.status, 403, refused.text);
  assert.equal((await worker.api('GET', `/api/v1/agents/${mine.id}`)).status, 200);
});

test('409 agent_in_use names the numbers that answer with the agent, until they are moved', async () => {
  const agent = await newAgent('Answering');
  const spare = await newAgent('Spare');
  const number = await worker.api('POST', '/api/v1/numbers', { number: '+15550104444', agent_id: agent.id });
  assert.equal(number.status, 201, number.text);
  const res = await worker.api('DELETE', `/api/v1/agents/${agent.id}`);
  assert.equal(res.status, 409, res.text);
  assert.equal(res.body.error.code, 'agent_in_use');
  assert.match(res.body.error.message, /in use by number \+15550104444/);
  assert.deepEqual(res.body.error.details, { numbers: ['+15550104444'], open_calls: 0 });
  assert.equal((await worker.api('GET', `/api/v1/agents/${agent.id}`)).status, 200, 'not deleted');

  const moved = await worker.api('PATCH', `/api/v1/numbers/${number.body.id}`, { agent_id: spare.id });
  assert.equal(moved.status, 200, moved.text);
  const deleted = await worker.api('DELETE', `/api/v1/agents/${agent.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  assert.deepEqual(deleted.body, { id: agent.id, deleted: true });
});

test('409 while a call of the agent is not finished; a canceled call no longer holds it', async () => {
  const agent = await newAgent('Caller');
  const call = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: inHours(5) });
  assert.equal(call.status, 201, call.text);
  const res = await worker.api('DELETE', `/api/v1/agents/${agent.id}`);
  assert.equal(res.status, 409, res.text);
  assert.equal(res.body.error.code, 'agent_in_use');
  assert.match(res.body.error.message, /1 call not yet finished/);
  assert.deepEqual(res.body.error.details, { numbers: [], open_calls: 1 });

  assert.equal((await worker.api('DELETE', `/api/v1/calls/${call.body.id}`)).status, 200);
  const deleted = await worker.api('DELETE', `/api/v1/agents/${agent.id}`);
  assert.equal(deleted.status, 200, deleted.text);
  // The finished call keeps its agent id.
  const kept = await worker.api('GET', `/api/v1/calls/${call.body.id}`);
  assert.equal(kept.status, 200, kept.text);
  assert.equal(kept.body.agent_id, agent.id);
});

test('a deleted agent is gone from every read and write, and the deletion is audited', async () => {
  const agent = await newAgent('Leaving');
  const res = await worker.api('DELETE', `/api/v1/agents/${agent.id}`, undefined, { headers: { 'x-request-id': 'agent-delete-1' } });
  assert.equal(res.status, 200, res.text);
  assert.equal((await worker.api('GET', `/api/v1/agents/${agent.id}`)).status, 404);
  assert.equal((await worker.api('DELETE', `/api/v1/agents/${agent.id}`)).status, 404, 'deleting twice is a 404');
  assert.equal((await worker.api('PATCH', `/api/v1/agents/${agent.id}`, { name: 'Back' })).status, 404);
  const list = await worker.api('GET', '/api/v1/agents?limit=100');
  assert.ok(!list.body.data.some((a) => a.id === agent.id), 'not listed');
  const number = await worker.api('POST', '/api/v1/numbers', { number: '+15550105555', agent_id: agent.id });
  assert.equal(number.status, 422, number.text);
  assert.equal(number.body.error.details[0].code, 'unknown_agent');
  const call = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: inHours(5) });
  assert.ok([404, 422].includes(call.status), call.text);

  const log = await worker.api('GET', `/api/v1/audit-log?resource_id=${agent.id}`);
  const entry = log.body.data.find((e) => e.request_id === 'agent-delete-1');
  assert.ok(entry, JSON.stringify(log.body));
  assert.equal(entry.action, 'agent.delete');
  assert.equal(entry.actor, 'admin');
  assert.equal(entry.before.name, 'Leaving');
  assert.equal(entry.after, null);
});
