// Operator surface: tenants and API keys (hashed, revocable, roles), tenant isolation of every
// resource (another tenant's id is a 404, never a 403), per-key rate limits, the audit log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TEST_VARS, UNDIALLED_TWILIO } from './harness.mjs';
import { sendResendWebhook, resendEvent } from './fakes/resend.mjs';

let worker;
let other; // tenant B's admin key
const mine = {}; // resources of the default tenant (bootstrap key)

const inHours = (h) => new Date(Date.now() + h * 3600_000).toISOString();

before(async () => {
  worker = await startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15550009999', PUBLIC_BASE_URL: 'https://agent.example.com', ...UNDIALLED_TWILIO } });
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Acme B' });
  assert.equal(tenant.status, 201, tenant.text);
  assert.match(tenant.body.api_key.key, /^pa_live_[0-9a-z]{26}$/);
  other = tenant.body.api_key.key;

  mine.agent = (await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'Be brief.' })).body;
  mine.number = (await worker.api('POST', '/api/v1/numbers', { number: '+15550001234', agent_id: mine.agent.id })).body;
  mine.call = (await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: mine.agent.id, start_at: inHours(5) })).body;
  mine.endpoint = (await worker.api('POST', '/api/v1/endpoints', { url: 'https://hooks.example.com/a', status: 'paused' })).body;
  const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, resendEvent('email.sent'));
  mine.event = { id: JSON.parse(sent.text).id };
  for (const [name, value] of Object.entries(mine)) assert.ok(value?.id, `${name} created`);
});
after(async () => {
  await worker?.stop();
});

const asOther = (method, path, body) => worker.api(method, path, body, { key: other });

test('keys are random, stored only as a hash, shown once', async () => {
  const created = await worker.api('POST', '/api/v1/api-keys', { name: 'ci', role: 'viewer' });
  assert.equal(created.status, 201);
  const { key, id, prefix } = created.body;
  assert.match(key, /^pa_live_/);
  assert.ok(key.startsWith(prefix));
  const rows = await worker.d1(`SELECT * FROM api_keys WHERE id = '${id}'`);
  assert.equal(rows.length, 1);
  assert.ok(!JSON.stringify(rows).includes(key), 'the key itself is not stored');
  const shown = await worker.api('GET', `/api/v1/api-keys/${id}`);
  assert.equal(shown.body.key, undefined);
  const list = await worker.api('GET', '/api/v1/api-keys');
  assert.ok(list.body.data.every((k) => k.key === undefined));
});

test('another tenant sees none of our resources: 404 by id, absent from lists', async () => {
  const byId = [
    ['GET', `/api/v1/agents/${mine.agent.id}`],
    ['PATCH', `/api/v1/agents/${mine.agent.id}`, { name: 'stolen' }],
    ['GET', `/api/v1/numbers/${mine.number.id}`],
    ['PATCH', `/api/v1/numbers/${mine.number.id}`, { owner_phone: '+15550000000' }],
    ['DELETE', `/api/v1/numbers/${mine.number.id}`],
    ['GET', `/api/v1/calls/${mine.call.id}`],
    ['PATCH', `/api/v1/calls/${mine.call.id}`, { start_at: inHours(9) }],
    ['DELETE', `/api/v1/calls/${mine.call.id}`],
    ['GET', `/api/v1/endpoints/${mine.endpoint.id}`],
    ['PATCH', `/api/v1/endpoints/${mine.endpoint.id}`, { status: 'enabled' }],
    ['DELETE', `/api/v1/endpoints/${mine.endpoint.id}`],
    ['POST', `/api/v1/endpoints/${mine.endpoint.id}/rotate-secret`, {}],
    ['GET', `/api/v1/events/${mine.event.id}`],
    ['POST', `/api/v1/events/${mine.event.id}/replay`, {}],
  ];
  for (const [method, path, body] of byId) {
    const res = await asOther(method, path, body);
    assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
  }
  for (const [path, id] of [['agents', mine.agent.id], ['numbers', mine.number.id], ['calls', mine.call.id],
    ['endpoints', mine.endpoint.id], ['events', mine.event.id], ['deliveries', null], ['api-keys', null], ['audit-log', null]]) {
    const res = await asOther('GET', `/api/v1/${path}`);
    assert.equal(res.status, 200, `${path}: ${res.text}`);
    if (id) assert.ok(!res.body.data.some((r) => r.id === id), `${path} leaks`);
  }
  const audit = await asOther('GET', '/api/v1/audit-log');
  assert.ok(audit.body.data.every((e) => e.actor !== 'admin'), 'no entries of the default tenant');
  // Using our agent from tenant B is refused as unknown, and our rows are unchanged.
  const call = await asOther('POST', '/api/v1/calls', { to: '+15558675310', agent_id: mine.agent.id, start_at: inHours(5) });
  assert.equal(call.status, 422);
  const still = await worker.api('GET', `/api/v1/calls/${mine.call.id}`);
  assert.equal(still.body.status, 'scheduled');
  assert.equal((await worker.api('GET', `/api/v1/agents/${mine.agent.id}`)).body.name, 'Ava');
});

test('roles: viewer reads, operator runs calls and replays, admin configures', async () => {
  const keyFor = async (role) => (await asOther('POST', '/api/v1/api-keys', { name: role, role })).body.key;
  const viewer = await keyFor('viewer');
  const operator = await keyFor('operator');
  const agent = (await asOther('POST', '/api/v1/agents', { name: 'Bo', system_prompt: 'Hi' })).body;
  const call = { to: '+15558675310', agent_id: agent.id, start_at: inHours(3) };
  const as = (key, method, path, body) => worker.api(method, path, body, { key });

  assert.equal((await as(viewer, 'GET', '/api/v1/calls')).status, 200);
  assert.equal((await as(viewer, 'GET', `/api/v1/agents/${agent.id}`)).status, 200);
  assert.equal((await as(viewer, 'POST', '/api/v1/calls', call)).status, 403);
  assert.equal((await as(viewer, 'POST', '/api/v1/deliveries/redrive', {})).status, 403);
  assert.equal((await as(viewer, 'POST', '/api/v1/endpoints', { url: 'https://x.example.com' })).status, 403);
  assert.equal((await as(viewer, 'GET', '/api/v1/audit-log')).status, 403);

  const scheduled = await as(operator, 'POST', '/api/v1/calls', call);
  assert.equal(scheduled.status, 201, scheduled.text);
  assert.equal((await as(operator, 'DELETE', `/api/v1/calls/${scheduled.body.id}`)).status, 200);
  assert.equal((await as(operator, 'POST', '/api/v1/deliveries/redrive', {})).status, 202);
  assert.equal((await as(operator, 'POST', '/api/v1/endpoints', { url: 'https://x.example.com' })).status, 403);
  assert.equal((await as(operator, 'POST', '/api/v1/agents', { name: 'x', system_prompt: 'y' })).status, 403);
  assert.equal((await as(operator, 'POST', '/api/v1/api-keys', { name: 'x' })).status, 403);

  assert.equal((await asOther('POST', '/api/v1/endpoints', { url: 'https://x.example.com' })).status, 201);
  assert.equal((await asOther('POST', '/api/v1/tenants', { name: 'C' })).status, 403, 'only the bootstrap key makes tenants');
});

test('a revoked key stops working at once', async () => {
  const created = await asOther('POST', '/api/v1/api-keys', { name: 'temp', role: 'admin' });
  const key = created.body.key;
  assert.equal((await worker.api('GET', '/api/v1/agents', undefined, { key })).status, 200);
  const revoked = await asOther('DELETE', `/api/v1/api-keys/${created.body.id}`);
  assert.equal(revoked.status, 200);
  assert.ok(revoked.body.revoked_at);
  const after = await worker.api('GET', '/api/v1/agents', undefined, { key });
  assert.equal(after.status, 401);
});

test('every mutation is in the audit log with actor, request id, before and after', async () => {
  const res = await worker.api('PATCH', `/api/v1/endpoints/${mine.endpoint.id}`, { description: 'audited' }, { headers: { 'x-request-id': 'audit-check-1' } });
  assert.equal(res.status, 200);
  const log = await worker.api('GET', `/api/v1/audit-log?resource_id=${mine.endpoint.id}`);
  const entry = log.body.data.find((e) => e.request_id === 'audit-check-1');
  assert.ok(entry, JSON.stringify(log.body));
  assert.equal(entry.action, 'endpoint.update');
  assert.equal(entry.actor, 'admin');
  assert.equal(entry.before.description, null);
  assert.equal(entry.after.description, 'audited');
  assert.equal(entry.after.secret, undefined, 'secrets never reach the audit log');
  const actions = new Set((await worker.api('GET', '/api/v1/audit-log?limit=200')).body.data.map((e) => e.action));
  for (const a of ['tenant.create', 'agent.create', 'number.create', 'call.schedule', 'endpoint.create']) assert.ok(actions.has(a), a);
  const theirs = (await asOther('GET', '/api/v1/audit-log?action=api_key.create')).body.data;
  assert.ok(theirs.length >= 1 && theirs.every((e) => e.actor.startsWith('key_')));
});

// The audit log's ids are integers, every other list's are text: both page through the same
// cursor code, one row past each page, without skipping or repeating a row.
test('the audit log and the tenant list page by cursor: every row once, newest first', async () => {
  for (const path of ['/api/v1/audit-log', '/api/v1/tenants']) {
    const all = (await worker.api('GET', `${path}?limit=200`)).body.data;
    assert.ok(all.length >= 2, `${path}: ${all.length} rows`);
    const walked = [];
    let cursor = null;
    for (let i = 0; i <= all.length; i++) {
      const query = cursor ? `limit=2&cursor=${encodeURIComponent(cursor)}` : 'limit=2';
      const page = await worker.api('GET', `${path}?${query}`);
      assert.equal(page.status, 200, page.text);
      assert.ok(page.body.data.length <= 2);
      walked.push(...page.body.data);
      cursor = page.body.next_cursor;
      if (!cursor) break;
    }
    assert.equal(cursor, null, `${path}: the walk ends`);
    assert.deepEqual(walked.map((r) => r.id), all.map((r) => r.id), path);
  }
});

test('each key has its own rate limit; 429 carries Retry-After', async () => {
  const limited = await startWorker({ vars: { API_RATE_LIMIT_PER_MINUTE: '5' } });
  try {
    const second = (await limited.api('POST', '/api/v1/tenants', { name: 'x' })).body.api_key.key;
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await limited.api('GET', '/api/v1/agents')).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429], 'five per minute, the first spent on the tenant');
    const res = await limited.fetch('/api/v1/agents', { headers: { authorization: `Bearer ${TEST_VARS.ADMIN_API_KEY}` } });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal((await res.json()).error.code, 'rate_limited');
    assert.equal((await limited.api('GET', '/api/v1/agents', undefined, { key: second })).status, 200, 'another key has its own budget');
  } finally {
    await limited.stop();
  }
});

/** The creation time (ms) and version of an id's UUIDv7: 26 base32 characters, 2 padding bits. */
function uuidOf(id) {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  const body = id.slice(id.indexOf('_') + 1);
  let bits = 0n;
  for (const c of body) bits = (bits << 5n) | BigInt(alphabet.indexOf(c));
  const uuid = bits >> 2n;
  return { ms: Number(uuid >> 80n), version: Number((uuid >> 76n) & 0xfn) };
}

test('ids are UUIDv7 from the runtime clock; lists page alike over old random ids and new ones', async () => {
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Ids' });
  assert.equal(tenant.status, 201, tenant.text);
  const key = tenant.body.api_key.key;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const started = Date.now();
  const agents = [];
  for (const name of ['one', 'two', 'three']) {
    const created = await worker.api('POST', '/api/v1/agents', { name, system_prompt: 'Be brief.' }, { key });
    assert.equal(created.status, 201, created.text);
    agents.push(created.body);
    await sleep(5);
  }
  const ended = Date.now();
  for (const id of [tenant.body.id, tenant.body.api_key.id, ...agents.map((a) => a.id)]) {
    assert.match(id, /^[a-z]+_[0-9a-z]{26}$/);
    const { ms, version } = uuidOf(id);
    assert.equal(version, 7, id);
    assert.ok(ms >= started - 1000 && ms <= ended + 1000, `${id} carries ${ms}, not ${started}..${ended}`);
  }
  const ids = agents.map((a) => a.id);
  assert.deepEqual([...ids].sort(), ids, 'later ids sort after earlier ones');

  // Rows made before UUIDv7 ids keep their random ids: cursors order by created_at first, so
  // an old id that sorts after (or before) every new one still pages in creation order.
  const [one, two, three] = agents.map((a) => Date.parse(a.created_at));
  assert.ok(one < two - 1 && two < three - 1);
  const oldHigh = `ag_${'z'.repeat(26)}`;
  const oldLow = `ag_${'0'.repeat(26)}`;
  for (const [old, at] of [[oldHigh, one + 1], [oldLow, two + 1]]) {
    await worker.d1(`INSERT INTO agents (id, tenant_id, name, system_prompt, config, created_at, updated_at)
      SELECT '${old}', tenant_id, 'old', system_prompt, config, ${at}, ${at} FROM agents WHERE id = '${ids[0]}'`);
  }
  const paged = [];
  let cursor = null;
  do {
    const page = await worker.api('GET', `/api/v1/agents?limit=2${cursor ? `&cursor=${cursor}` : ''}`, undefined, { key });
    assert.equal(page.status, 200, page.text);
    paged.push(...page.body.data.map((a) => a.id));
    cursor = page.body.next_cursor;
  } while (cursor);
  assert.deepEqual(paged, [ids[2], oldLow, ids[1], oldHigh, ids[0]]);
});
