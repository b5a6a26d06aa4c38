// One PATCH convention for every resource: a field left out keeps its value, `null` clears it
// where clearing is allowed (a 422 `not_clearable` where it is not), a value sets it. Proven on
// agents, numbers and endpoints; each refused PATCH leaves the resource as it was.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker } from './harness.mjs';

let worker;

before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.stop();
});

function assertNotClearable(res, field) {
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.error.code, 'invalid_fields');
  const detail = res.body.error.details.find((d) => d.field === field);
  assert.ok(detail, `a ${field} error in ${res.text}`);
  assert.equal(detail.code, 'not_clearable', res.text);
}

async function patch(resource, id, body) {
  return worker.api('PATCH', `/api/v1/${resource}/${id}`, body);
}

/** Creates a `resource` (asserts the 201); resolves to its id. */
async function create(resource, body) {
  const res = await worker.api('POST', `/api/v1/${resource}`, body);
  assert.equal(res.status, 201, res.text);
  return res.body.id;
}

/** A PATCH that must succeed (asserts the 200); resolves to the updated resource. */
async function patched(resource, id, body) {
  const res = await patch(resource, id, body);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

test('agents: absent keeps, null clears, value sets, required fields cannot be cleared', async () => {
  const id = await create('agents', {
    name: 'Ava',
    system_prompt: 'Be brief.',
    first_message: 'Hello!',
    voice: { provider: 'elevenlabs', voice_id: 'rachel' },
    allowed_countries: ['us'],
  });

  const renamed = await patched('agents', id, { name: 'Bea' });
  assert.equal(renamed.name, 'Bea', 'a value sets');
  assert.equal(renamed.first_message, 'Hello!', 'absent keeps');
  assert.deepEqual(renamed.voice, { provider: 'elevenlabs', voice_id: 'rachel' });
  assert.deepEqual(renamed.allowed_countries, ['US']);

  const cleared = await patched('agents', id, { first_message: null, voice: null });
  assert.equal(cleared.first_message, null, 'null clears');
  assert.equal(cleared.voice, null, 'null clears');
  assert.equal(cleared.name, 'Bea');
  assert.equal(cleared.system_prompt, 'Be brief.');
  assert.deepEqual(cleared.allowed_countries, ['US'], 'absent keeps');

  for (const field of ['name', 'system_prompt']) {
    assertNotClearable(await patch('agents', id, { [field]: null }), field);
  }
  const after = await worker.api('GET', `/api/v1/agents/${id}`);
  assert.equal(after.body.name, 'Bea');
  assert.equal(after.body.system_prompt, 'Be brief.');
  assert.equal(after.body.updated_at, cleared.updated_at, 'a refused PATCH changes nothing');
});

test('numbers: absent keeps, null clears, value sets, the agent cannot be cleared', async () => {
  const agent = (await worker.api('POST', '/api/v1/agents', { name: 'Desk', system_prompt: 'Be brief.' })).body;
  const other = (await worker.api('POST', '/api/v1/agents', { name: 'Night', system_prompt: 'Be brief.' })).body;
  const id = await create('numbers', {
    number: '+15550004321',
    agent_id: agent.id,
    owner_phone: '+15550000001',
  });

  const ring = await patched('numbers', id, { ring_owner_first: true });
  assert.equal(ring.ring_owner_first, true, 'a value sets');
  assert.equal(ring.owner_phone, '+15550000001', 'absent keeps');
  assert.equal(ring.agent_id, agent.id, 'absent keeps');

  const moved = await patched('numbers', id, { agent_id: other.id });
  assert.equal(moved.agent_id, other.id);
  assert.equal(moved.ring_owner_first, true);

  // Clearing is validated like any change: the owner cannot go while calls ring them first.
  const orphan = await patch('numbers', id, { owner_phone: null });
  assert.equal(orphan.status, 422, orphan.text);
  const cleared = await patched('numbers', id, { owner_phone: null, ring_owner_first: null });
  assert.equal(cleared.owner_phone, null, 'null clears');
  assert.equal(cleared.ring_owner_first, false, 'null clears to the default');
  assert.equal(cleared.agent_id, other.id);

  assertNotClearable(await patch('numbers', id, { agent_id: null }), 'agent_id');
  const after = await worker.api('GET', `/api/v1/numbers/${id}`);
  assert.equal(after.body.agent_id, other.id);
});

test('endpoints: absent keeps, null clears, value sets, url and status cannot be cleared', async () => {
  const id = await create('endpoints', {
    url: 'https://hooks.example.com/patch',
    description: 'CRM',
    event_types: ['call.completed'],
  });

  const paused = await patched('endpoints', id, { status: 'paused' });
  assert.equal(paused.status, 'paused', 'a value sets');
  assert.equal(paused.description, 'CRM', 'absent keeps');
  assert.deepEqual(paused.event_types, ['call.completed'], 'absent keeps');
  assert.equal(paused.url, 'https://hooks.example.com/patch');

  const cleared = await patched('endpoints', id, { description: null });
  assert.equal(cleared.description, null, 'null clears');
  assert.deepEqual(cleared.event_types, ['call.completed'], 'absent keeps');
  const every = await patched('endpoints', id, { event_types: null });
  assert.equal(every.event_types, null, 'null clears the filter (every type)');

  const moved = await patched('endpoints', id, { url: 'https://hooks.example.com/moved' });
  assert.equal(moved.url, 'https://hooks.example.com/moved');
  assert.equal(moved.status, 'paused');

  for (const field of ['url', 'status']) {
    assertNotClearable(await patch('endpoints', id, { [field]: null }), field);
  }
  const after = await worker.api('GET', `/api/v1/endpoints/${id}`);
  assert.equal(after.body.url, 'https://hooks.example.com/moved');
  assert.equal(after.body.status, 'paused');
});
