// Security of the operator surface (issue 10, items 6, 9, 10 and "also"), each attack performed
// from outside as an attacker would: a viewer/operator key reading signing secrets, guessing API
// keys from one address, a weak or example ADMIN_API_KEY on a public host, missing security
// headers, API keys in live-view URLs and reusable live tickets, a tenant claiming phone numbers
// or learning that another tenant holds one.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { startWorker, eventually, sleep, filesUnder, ROOT, UNDIALLED_TWILIO } from './harness.mjs';
import { WebSocket } from 'ws';

/** A bootstrap key that passes the strength rules (40 random characters). */
const STRONG_ADMIN_KEY = `adm_${randomBytes(30).toString('base64url')}`;
const PUBLIC_HOST = 'agent.example.com';
const inHours = (h) => new Date(Date.now() + h * 3600_000).toISOString();
/** A fresh documentation-range address per scenario, so throttling in one never leaks into another. */
let nextAddress = 10;
const newAddress = () => `198.51.100.${nextAddress++}`;
const guessKey = () => `pa_live_${randomBytes(16).toString('hex').slice(0, 26)}`;

let worker;
let tenant; // tenant B: {id, key}

before(async () => {
  worker = await startWorker({ vars: { ADMIN_API_KEY: STRONG_ADMIN_KEY, DEFAULT_FROM_NUMBER: '+15550009999', ...UNDIALLED_TWILIO } });
  const created = await worker.api('POST', '/api/v1/tenants', { name: 'Tenant B' });
  assert.equal(created.status, 201, created.text);
  tenant = { id: created.body.id, key: created.body.api_key.key };
});
after(async () => {
  await worker?.stop();
});

/** An API call as `key` from client address `ip` (what Cloudflare puts in CF-Connecting-IP). */
const as = (key, method, pathname, body, { ip = newAddress(), headers = {} } = {}) =>
  worker.api(method, pathname, body, { key, headers: { 'cf-connecting-ip': ip, ...headers } });

/** Asserts the error shape every refusal uses. */
function assertError(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body?.error?.code, code, res.text);
  assert.ok(res.body.error.message, 'a message');
  assert.ok(res.body.error.request_id, 'a request id');
}

/**
 * A raw HTTP/1.1 request (node:http, so a `Host` header of our choosing reaches the worker the
 * way a request to a public hostname would). Resolves {status, headers, body, text}; an accepted
 * WebSocket upgrade resolves {status: 101} and is closed at once.
 */
function raw(port, method, pathname, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathname, headers });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: null, text: '' });
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: json, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A live-view WebSocket upgrade of `callId` with the given query and headers. */
const upgradeLive = (callId, query = '', headers = {}) => raw(worker.port, 'GET', `/api/v1/calls/${callId}/live${query}`, {
  headers: {
    connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'), 'cf-connecting-ip': newAddress(), ...headers,
  },
});

// ---- #6: signing secrets ---------------------------------------------------------------------

test('#6 viewer and operator keys never read an endpoint signing secret; admins read it from /secret', async () => {
  const keyOf = async (role) => {
    const res = await as(tenant.key, 'POST', '/api/v1/api-keys', { name: `${role}-6`, role });
    assert.equal(res.status, 201, res.text);
    return res.body.key;
  };
  const viewer = await keyOf('viewer');
  const operator = await keyOf('operator');
  const created = await as(tenant.key, 'POST', '/api/v1/endpoints', { url: 'https://hooks.example.com/six', status: 'paused' });
  assert.equal(created.status, 201, created.text);
  const { id, secret } = created.body;
  assert.match(secret, /^whsec_/, 'the secret is shown at creation');

  for (const [who, key] of [['viewer', viewer], ['operator', operator], ['admin', tenant.key]]) {
    const one = await as(key, 'GET', `/api/v1/endpoints/${id}`);
    assert.equal(one.status, 200, `${who}: ${one.text}`);
    assert.equal(one.body.secret, undefined, `${who} GET /endpoints/{id} carries no secret`);
    assert.ok(!one.text.includes(secret), `${who}: the secret appears nowhere in the answer`);
    const list = await as(key, 'GET', '/api/v1/endpoints');
    assert.equal(list.status, 200);
    assert.ok(list.body.data.some((e) => e.id === id));
    assert.ok(!list.text.includes(secret), `${who}: not in the list either`);
  }
  for (const key of [viewer, operator]) {
    assertError(await as(key, 'GET', `/api/v1/endpoints/${id}/secret`), 403, 'forbidden');
  }
  const patched = await as(tenant.key, 'PATCH', `/api/v1/endpoints/${id}`, { description: 'patched' });
  assert.equal(patched.status, 200, patched.text);
  assert.ok(!patched.text.includes(secret), 'PATCH answers without the secret');

  const read = await as(tenant.key, 'GET', `/api/v1/endpoints/${id}/secret`);
  assert.equal(read.status, 200, read.text);
  assert.equal(read.body.id, id);
  assert.equal(read.body.secret, secret, 'the admin-only route returns the signing secret');
  const audited = await as(tenant.key, 'GET', `/api/v1/audit-log?resource_id=${id}`);
  const readEntry = audited.body.data.find((e) => e.action === 'endpoint.read_secret');
  assert.ok(readEntry, 'reading a secret is audited');
  assert.ok(!audited.text.includes(secret), 'the audit log never holds the secret');
  const rotated = await as(tenant.key, 'POST', `/api/v1/endpoints/${id}/rotate-secret`, { grace_seconds: 60 });
  assert.equal(rotated.status, 200, rotated.text);
  assert.match(rotated.body.secret, /^whsec_/, 'rotation answers with the new secret');
  assert.notEqual(rotated.body.secret, secret);
  assert.equal((await as(tenant.key, 'GET', `/api/v1/endpoints/${id}/secret`)).body.secret, rotated.body.secret);

  // Another tenant's admin learns nothing, not even that the endpoint exists.
  assertError(await as(STRONG_ADMIN_KEY, 'GET', `/api/v1/endpoints/${id}/secret`), 404, 'not_found');
  // Nothing was lost: the endpoint is intact.
  const after = await as(tenant.key, 'GET', `/api/v1/endpoints/${id}`);
  assert.equal(after.body.description, 'patched');
  assert.equal(after.body.status, 'paused');
});

// ---- #9: credential guessing ------------------------------------------------------------------

test('#9 guessing keys from one address is throttled with 429 + Retry-After, even for a correct key, and only for that address', async () => {
  const attacker = newAddress();
  const statuses = [];
  let firstRefusal = null;
  const started = Date.now();
  for (let i = 0; i < 110; i++) {
    const res = await as(guessKey(), 'GET', '/api/v1/agents', undefined, { ip: attacker });
    statuses.push(res.status);
    if (res.status === 429 && !firstRefusal) firstRefusal = res;
    assert.ok([401, 429].includes(res.status), `guess ${i}: ${res.status} ${res.text}`);
  }
  assert.equal(statuses[0], 401, 'a wrong key is a 401 until the address is over its limit');
  assert.ok(firstRefusal, `no 429 among ${statuses.length} wrong keys: ${statuses.join(',')}`);
  assertError(firstRefusal, 429, 'rate_limited');
  assert.ok(Number(firstRefusal.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
  // The default budget is 30 failures a minute: a burst of 30, then one every 2 s.
  const unauthorized = statuses.filter((s) => s === 401).length;
  const allowed = 30 + Math.ceil((Date.now() - started) / 2000) + 1;
  assert.ok(unauthorized <= allowed, `at most ${allowed} wrong keys checked, got ${unauthorized}: ${statuses.join(',')}`);
  assert.ok(statuses.filter((s) => s === 429).length >= 110 - allowed, 'the rest are refused unchecked');

  // A correct key from the throttled address is refused before it is checked: a right guess
  // made while over the limit reveals nothing.
  const correct = await as(STRONG_ADMIN_KEY, 'GET', '/api/v1/agents', undefined, { ip: attacker });
  assertError(correct, 429, 'rate_limited');
  const wait = Number(correct.headers.get('retry-after'));
  assert.ok(wait >= 1 && wait <= 60, `Retry-After ${wait}`);
  assertError(await as(tenant.key, 'GET', '/api/v1/calls', undefined, { ip: attacker }), 429, 'rate_limited');

  // Another address is unaffected.
  const elsewhere = await as(STRONG_ADMIN_KEY, 'GET', '/api/v1/agents', undefined, { ip: newAddress() });
  assert.equal(elsewhere.status, 200, elsewhere.text);

  // Once the window passes, the right key works again from the throttled address.
  await sleep(wait * 1000);
  await eventually(async () => (await as(STRONG_ADMIN_KEY, 'GET', '/api/v1/agents', undefined, { ip: attacker })).status === 200,
    { timeout: 10_000, interval: 500, message: 'the correct key after Retry-After' });
});

test('#9 requests without a credential are plain 401s and do not count towards the limit', async () => {
  const ip = newAddress();
  for (let i = 0; i < 45; i++) {
    const res = await worker.fetch('/api/v1/agents', { headers: { 'cf-connecting-ip': ip } });
    assert.equal(res.status, 401, `request ${i}`);
    assert.equal((await res.json()).error.code, 'unauthorized');
  }
  assert.equal((await as(STRONG_ADMIN_KEY, 'GET', '/api/v1/agents', undefined, { ip })).status, 200);
});

test('#9 a revoked key and a wrong key are both failed attempts of their address', async () => {
  const created = await as(tenant.key, 'POST', '/api/v1/api-keys', { name: 'soon revoked', role: 'viewer' });
  assert.equal((await as(tenant.key, 'DELETE', `/api/v1/api-keys/${created.body.id}`)).status, 200);
  const ip = newAddress();
  const statuses = [];
  for (let i = 0; i < 40; i++) statuses.push((await as(i % 2 ? created.body.key : guessKey(), 'GET', '/api/v1/agents', undefined, { ip })).status);
  assert.ok(statuses.includes(429), `revoked + wrong keys are throttled: ${statuses.join(',')}`);
});

test('#9 a weak or example ADMIN_API_KEY authenticates nothing on a public host; health reports it', async () => {
  // The published example, and a key one character short of the minimum (the core's unit tests
  // cover the rest, e.g. "x").
  const weak = ['dev-admin-key-change-me', 'a-31-character-key-is-too-short'];
  assert.equal(weak[1].length, 31);
  const workers = await Promise.all(weak.map((key) => startWorker({ vars: { ADMIN_API_KEY: key } })));
  try {
    for (const [i, w] of workers.entries()) {
      const key = weak[i];
      // The attack: the published example (or a guessable key) against a deployed worker.
      const headers = { host: PUBLIC_HOST, authorization: `Bearer ${key}` };
      const refused = await raw(w.port, 'GET', '/api/v1/agents', { headers });
      assertError(refused, 500, 'config_error');
      assert.match(refused.body.error.message, /ADMIN_API_KEY/, 'the error names the variable');
      if (key.length > 1) assert.ok(!refused.text.includes(key), 'the key itself is not echoed');
      const mutation = await raw(w.port, 'POST', '/api/v1/tenants', {
        headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'evil' }),
      });
      assert.equal(mutation.status, 500, `nothing is created with the weak key: ${mutation.text}`);
      assert.equal((await w.d1("SELECT count(*) AS n FROM tenants WHERE name = 'evil'"))[0].n, 0);
      const health = await raw(w.port, 'GET', '/health', { headers: { host: PUBLIC_HOST } });
      assert.equal(health.status, 503, health.text);
      assert.equal(health.body.status, 'degraded');
      assert.equal(health.body.checks.config.ok, false);
      assert.match(health.body.checks.config.error, /ADMIN_API_KEY/);

      // On loopback (local development) the key still works, with a warning in health.
      const local = await w.api('GET', '/api/v1/agents');
      assert.equal(local.status, 200, `${key} on loopback: ${local.text}`);
      const localHealth = await (await w.fetch('/health')).json();
      assert.equal(localHealth.status, 'ok');
      assert.match(JSON.stringify(localHealth.checks.config), /ADMIN_API_KEY/, 'a warning in local development');
      // A tenant key made locally keeps working on the public host: only the bootstrap key is refused.
      const made = await w.api('POST', '/api/v1/tenants', { name: 'T' });
      assert.equal(made.status, 201, made.text);
      const tenantKey = await raw(w.port, 'GET', '/api/v1/agents', { headers: { host: PUBLIC_HOST, authorization: `Bearer ${made.body.api_key.key}` } });
      assert.equal(tenantKey.status, 200, `tenant keys are unaffected: ${tenantKey.text}`);
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  // A strong key works on a public host, and health is fine there.
  const strong = await raw(worker.port, 'GET', '/api/v1/agents', { headers: { host: PUBLIC_HOST, authorization: `Bearer ${STRONG_ADMIN_KEY}` } });
  assert.equal(strong.status, 200, strong.text);
  const health = await raw(worker.port, 'GET', '/health', { headers: { host: PUBLIC_HOST } });
  assert.equal(health.status, 200, health.text);
});

test('#9 the local set-up generates a strong ADMIN_API_KEY; the example file carries none', async () => {
  const example = await readFile(path.join(ROOT, '.dev.vars.example'), 'utf8');
  const line = example.split('\n').find((l) => l.startsWith('ADMIN_API_KEY='));
  assert.ok(line !== undefined, '.dev.vars.example names ADMIN_API_KEY');
  assert.equal(line.slice('ADMIN_API_KEY='.length).trim(), '', 'no usable key in the example');
  // `npm run dev` (and `npm run demo`) make the key with scripts/dev-vars.sh; what it writes is
  // exercised in tests/demo.test.mjs ("first run: .dev.vars gets a strong random ADMIN_API_KEY").
  const dev = await readFile(path.join(ROOT, 'scripts', 'dev.sh'), 'utf8');
  assert.match(dev, /bash scripts\/dev-vars\.sh/, 'dev.sh runs dev-vars.sh');
  const vars = await readFile(path.join(ROOT, 'scripts', 'dev-vars.sh'), 'utf8');
  assert.match(vars, /ADMIN_API_KEY/, 'dev-vars.sh writes ADMIN_API_KEY into .dev.vars');
  assert.match(vars, /randomBytes|urandom|openssl rand/, 'from a random source');
});

// ---- #10: security headers ----------------------------------------------------------------------

function assertCommonHeaders(headers, where) {
  const get = (n) => (typeof headers.get === 'function' ? headers.get(n) : headers[n]);
  assert.equal(get('x-content-type-options'), 'nosniff', `${where}: nosniff`);
  assert.match(get('referrer-policy') ?? '', /^(no-referrer|strict-origin)$/, `${where}: Referrer-Policy`);
  const csp = get('content-security-policy') ?? '';
  assert.match(csp, /frame-ancestors 'none'/, `${where}: CSP frame-ancestors ('${csp}')`);
  assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `${where}: no unsafe CSP sources`);
  return csp;
}

test('#10 every worker response carries nosniff, Referrer-Policy and a deny-all CSP', async () => {
  const cases = [
    ['health', () => worker.fetch('/health'), 200],
    ['API 200', () => worker.fetch('/api/v1/agents', { headers: { authorization: `Bearer ${STRONG_ADMIN_KEY}` } }), 200],
    ['API 401', () => worker.fetch('/api/v1/agents'), 401],
    ['API 404', () => worker.fetch('/api/v1/nope', { headers: { authorization: `Bearer ${STRONG_ADMIN_KEY}` } }), 404],
    ['API 405', () => worker.fetch('/health', { method: 'DELETE' }), 405],
    ['OpenAPI', () => worker.fetch('/api/v1/openapi.json'), 200],
    ['webhook 401', () => worker.fetch('/webhooks/resend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 401],
    ['unknown route', () => worker.fetch('/no/such/route'), 404],
    ['media refusal', () => worker.fetch('/media/twilio/call_nope'), 426],
  ];
  for (const [where, call, status] of cases) {
    const res = await call();
    await res.arrayBuffer();
    assert.equal(res.status, status, where);
    const csp = assertCommonHeaders(res.headers, where);
    assert.match(csp, /default-src 'none'/, `${where}: default-src 'none'`);
  }
});

test('#10 the dashboard is served with a strict CSP and has no inline script, handler or style', async () => {
  for (const asset of ['/', '/index.html', '/app.js', '/style.css', '/js/api.js', '/js/pages/live.js']) {
    const res = await worker.fetch(asset);
    await res.arrayBuffer();
    assert.equal(res.status, 200, asset);
    const csp = assertCommonHeaders(res.headers, asset);
    assert.match(csp, /script-src 'self'/, `${asset}: script-src 'self'`);
    assert.match(csp, /default-src 'none'|default-src 'self'/, `${asset}: a default-src`);
    assert.match(csp, /style-src 'self'/, `${asset}: style-src 'self'`);
  }
  // The pages themselves need nothing inline, so the CSP costs no feature.
  const html = await readFile(path.join(ROOT, 'public', 'index.html'), 'utf8');
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(html), 'no inline <script>');
  assert.ok(!/\son[a-z]+\s*=/i.test(html), 'no inline event handler attributes');
  assert.ok(!/\sstyle\s*=|<style/i.test(html), 'no inline styles');
  for (const file of await filesUnder(path.join(ROOT, 'public'), '.js')) {
    const js = await readFile(file, 'utf8');
    assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/.test(js), `${file}: no HTML or code from strings`);
    assert.ok(!/['"]style['"]\s*:|setAttribute\(\s*['"]style/.test(js), `${file}: no inline style attributes`);
    assert.ok(!/\?key=/.test(js), `${file}: no API key in a URL`);
  }
});

// ---- #10: live view tickets -------------------------------------------------------------------

/** A scheduled call of tenant B (the live view works for any call of the tenant). */
async function callOfTenant(key = tenant.key) {
  const agent = await as(key, 'POST', '/api/v1/agents', { name: 'Live', system_prompt: 'Hi' });
  assert.equal(agent.status, 201, agent.text);
  const call = await as(key, 'POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.body.id, start_at: inHours(4) });
  assert.equal(call.status, 201, call.text);
  return call.body.id;
}

test('#10 the live view refuses an API key in the URL', async () => {
  const callId = await callOfTenant();
  const res = await upgradeLive(callId, `?key=${encodeURIComponent(tenant.key)}`);
  assert.notEqual(res.status, 101, 'an API key in the query opens no live view');
  assertError(res, 401, 'unauthorized');
  assert.match(res.body.error.message, /ticket/, 'the error points at live tickets');
  // The key itself still works where it belongs: in the Authorization header.
  assert.equal((await upgradeLive(callId, '', { authorization: `Bearer ${tenant.key}` })).status, 101);
});

test('#10 a live ticket is short-lived, single-use, hashed at rest and bound to one call of one tenant', async () => {
  const callId = await callOfTenant();
  const otherCall = await callOfTenant();
  const viewer = (await as(tenant.key, 'POST', '/api/v1/api-keys', { name: 'live viewer', role: 'viewer' })).body.key;

  const issued = await as(viewer, 'POST', `/api/v1/calls/${callId}/live-ticket`);
  assert.equal(issued.status, 201, issued.text);
  const { ticket, expires_at: expiresAt } = issued.body;
  assert.ok(typeof ticket === 'string' && ticket.length >= 26, 'an unguessable ticket');
  const ttl = Date.parse(expiresAt) - Date.now();
  assert.ok(ttl > 0 && ttl <= 60_000, `expires within 60 s (${ttl} ms)`);
  const rows = await worker.d1('SELECT * FROM live_tickets');
  assert.ok(rows.length >= 1);
  assert.ok(!JSON.stringify(rows).includes(ticket), 'only a hash of the ticket is stored');

  // Using it on another call is refused and burns nothing of the right call's ticket.
  assertError(await upgradeLive(otherCall, `?ticket=${ticket}`), 401, 'unauthorized');
  // The browser's way in: ticket in the query, the live-view subprotocol, no key anywhere.
  const live = new WebSocket(`ws://127.0.0.1:${worker.port}/api/v1/calls/${callId}/live?ticket=${ticket}`, ['phone-agent.live.v1']);
  const hello = await new Promise((resolve, reject) => {
    live.once('message', (data) => resolve(JSON.parse(data.toString())));
    live.once('error', reject);
    live.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  assert.equal(hello.type, 'hello');
  assert.equal(hello.call_id ?? callId, callId);
  assert.equal(live.protocol, 'phone-agent.live.v1');
  live.close();
  // Single use.
  assertError(await upgradeLive(callId, `?ticket=${ticket}`), 401, 'unauthorized');

  // Another tenant can neither get a ticket for this call nor use one of its own on it.
  assertError(await as(STRONG_ADMIN_KEY, 'POST', `/api/v1/calls/${callId}/live-ticket`), 404, 'not_found');
  const foreignCall = await callOfTenant(STRONG_ADMIN_KEY);
  const foreign = await as(STRONG_ADMIN_KEY, 'POST', `/api/v1/calls/${foreignCall}/live-ticket`);
  assert.equal(foreign.status, 201, foreign.text);
  assertError(await upgradeLive(callId, `?ticket=${foreign.body.ticket}`), 401, 'unauthorized');

  // Expired: the ticket's time has passed (its stored deadline moved into the past).
  const late = await as(viewer, 'POST', `/api/v1/calls/${callId}/live-ticket`);
  assert.equal(late.status, 201);
  await worker.d1(`UPDATE live_tickets SET expires_at = ${Date.now() - 1000} WHERE used_at IS NULL AND call_id = '${callId}'`);
  assertError(await upgradeLive(callId, `?ticket=${late.body.ticket}`), 401, 'unauthorized');
  // A made-up ticket is refused.
  assertError(await upgradeLive(callId, `?ticket=lvt_${randomBytes(16).toString('hex')}`), 401, 'unauthorized');
  // A ticket needs a key: none, none given.
  assertError(await as('', 'POST', `/api/v1/calls/${callId}/live-ticket`), 401, 'unauthorized');
});

test('#10 wrong live tickets count as failed authentication of their address', async () => {
  const callId = await callOfTenant();
  const ip = newAddress();
  const statuses = [];
  for (let i = 0; i < 40; i++) {
    statuses.push((await upgradeLive(callId, `?ticket=lvt_${randomBytes(13).toString('hex')}`, { 'cf-connecting-ip': ip })).status);
  }
  assert.ok(statuses.includes(429), `ticket guessing is throttled: ${statuses.join(',')}`);
});

// ---- also: number registration --------------------------------------------------------------------

test('only the bootstrap key assigns numbers; a tenant never learns that another tenant holds one', async () => {
  const own = await as(STRONG_ADMIN_KEY, 'POST', '/api/v1/agents', { name: 'Default', system_prompt: 'Hi' });
  const held = await as(STRONG_ADMIN_KEY, 'POST', '/api/v1/numbers', { number: '+15550007001', agent_id: own.body.id });
  assert.equal(held.status, 201, held.text);
  const agentB = (await as(tenant.key, 'POST', '/api/v1/agents', { name: 'B1', system_prompt: 'Hi' })).body;
  const agentB2 = (await as(tenant.key, 'POST', '/api/v1/agents', { name: 'B2', system_prompt: 'Hi' })).body;

  // The attack: tenant B claims a number it does not own (held by another tenant, or free).
  const claimHeld = await as(tenant.key, 'POST', '/api/v1/numbers', { number: '+15550007001', agent_id: agentB.id });
  const claimFree = await as(tenant.key, 'POST', '/api/v1/numbers', { number: '+15550007002', agent_id: agentB.id });
  assertError(claimHeld, 403, 'forbidden');
  assertError(claimFree, 403, 'forbidden');
  assert.equal(claimHeld.body.error.message, claimFree.body.error.message, 'held and free look the same');
  assert.equal((await worker.d1("SELECT count(*) AS n FROM phone_numbers WHERE number = '+15550007002'"))[0].n, 0);
  const still = await as(STRONG_ADMIN_KEY, 'GET', `/api/v1/numbers/${held.body.id}`);
  assert.equal(still.body.agent_id, own.body.id, 'the holder keeps its number and agent');

  // The bootstrap key assigns a number to tenant B (naming an agent of B).
  const unknownTenant = await as(STRONG_ADMIN_KEY, 'POST', '/api/v1/numbers', { number: '+15550007003', agent_id: agentB.id, tenant_id: 'ten_nope' });
  assertError(unknownTenant, 422, 'invalid_fields');
  const wrongAgent = await as(STRONG_ADMIN_KEY, 'POST', '/api/v1/numbers', { number: '+15550007003', agent_id: own.body.id, tenant_id: tenant.id });
  assertError(wrongAgent, 422, 'invalid_fields');
  const assigned = await as(STRONG_ADMIN_KEY, 'POST', '/api/v1/numbers', { number: '+15550007003', agent_id: agentB.id, tenant_id: tenant.id });
  assert.equal(assigned.status, 201, assigned.text);
  assert.equal(assigned.body.agent_id, agentB.id);

  // Tenant B manages which of its agents answers it, and nothing else.
  const mine = await as(tenant.key, 'GET', '/api/v1/numbers');
  assert.ok(mine.body.data.some((n) => n.number === '+15550007003'));
  assert.ok(!mine.body.data.some((n) => n.number === '+15550007001'));
  const moved = await as(tenant.key, 'PATCH', `/api/v1/numbers/${assigned.body.id}`, { agent_id: agentB2.id });
  assert.equal(moved.status, 200, moved.text);
  assert.equal(moved.body.agent_id, agentB2.id);
  assertError(await as(tenant.key, 'PATCH', `/api/v1/numbers/${assigned.body.id}`, { agent_id: own.body.id }), 422, 'invalid_fields');
  // Another tenant's number by id: the same 404 as a number that does not exist.
  const heldById = await as(tenant.key, 'GET', `/api/v1/numbers/${held.body.id}`);
  const noneById = await as(tenant.key, 'GET', '/api/v1/numbers/num_doesnotexist');
  assertError(heldById, 404, 'not_found');
  assertError(noneById, 404, 'not_found');
  assert.equal(heldById.body.error.message.replace(held.body.id, 'ID'), noneById.body.error.message.replace('num_doesnotexist', 'ID'));
});

// ---- also: keys and secrets come from a fail-closed generator --------------------------------------

test('keys and endpoint secrets are long random values, never repeated', async () => {
  const seen = new Set();
  for (let i = 0; i < 5; i++) {
    const key = (await as(tenant.key, 'POST', '/api/v1/api-keys', { name: `k${i}`, role: 'viewer' })).body.key;
    assert.match(key, /^pa_live_[0-9a-z]{26}$/);
    const secret = (await as(tenant.key, 'POST', '/api/v1/endpoints', { url: `https://hooks.example.com/r${i}`, status: 'paused' })).body.secret;
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    for (const v of [key, secret]) {
      assert.ok(!seen.has(v));
      seen.add(v);
    }
  }
});
