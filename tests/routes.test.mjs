// The route table (src/routes.rs) against the running worker: a wrong method is a JSON 405 whose
// `Allow` lists the path's methods; a private path says nothing (not even 404 or 405) before a
// credential; and every gated route refuses each role below its gate. The routes are iterated
// from the table, so a route added without the right gate fails here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually } from './harness.mjs';
import { routeTable, concrete, methodsOn } from './route-table.mjs';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** The routes anyone may call: adding one is a decision this list records. */
const PUBLIC = [
  'GET /health',
  'POST /webhooks/{provider}',
  'POST /voice/{carrier}/status',
  'POST /voice/{carrier}/incoming',
  // The carrier's recording-status callback: verified by the carrier's signature, like /status.
  'POST /voice/{carrier}/recording',
  'GET /media/{carrier}/{call_id}',
  'GET /api/v1/openapi.json',
  // A call's recording through the server-signed, one-hour link of call.recording.ready.
  'GET /api/v1/calls/{id}/recording',
];
/** Non-GET routes a viewer may call, each with why. */
const READ_ONLY_POSTS = {
  // Trades the viewer's key for a single-use ticket to watch a call it may already read.
  'POST /api/v1/calls/{id}/live-ticket': 'Read',
};
/** The roles each gate refuses (`bootstrapless` is a tenant's own admin key). */
const REFUSED = {
  Public: [],
  Read: [],
  Operate: ['viewer'],
  Administer: ['viewer', 'operator'],
  Bootstrap: ['viewer', 'operator', 'bootstrapless'],
};

let worker;
let routes;
const keys = {};
before(async () => {
  routes = await routeTable();
  worker = await startWorker();
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Routes' });
  assert.equal(tenant.status, 201, tenant.text);
  keys.bootstrapless = tenant.body.api_key.key;
  for (const role of ['viewer', 'operator']) {
    const made = await worker.api('POST', '/api/v1/api-keys', { name: `routes-${role}`, role });
    assert.equal(made.status, 201, made.text);
    keys[role] = made.body.key;
  }
});
after(async () => {
  await worker?.stop();
});

const isApi = (pathname) => pathname.startsWith('/api/v1/') && pathname !== '/api/v1/openapi.json';

async function assertJsonError(res, status, code, label) {
  assert.equal(res.status, status, `${label}: status`);
  const body = await res.json();
  assert.equal(body.error.code, code, `${label}: code`);
  assert.equal(body.error.request_id, res.headers.get('x-request-id'), `${label}: request id`);
  return body;
}

test('the table gates every route, and only the listed ones are public or readable by a viewer', () => {
  assert.deepEqual(routes.filter((r) => r.gate === 'Public').map((r) => r.label), PUBLIC);
  const labels = routes.map((r) => r.label);
  assert.equal(new Set(labels).size, labels.length, 'each (method, path) once');
  const readMutations = routes.filter((r) => r.method !== 'GET' && r.gate === 'Read').map((r) => r.label);
  assert.deepEqual(readMutations, Object.keys(READ_ONLY_POSTS), 'a mutating route needs more than Read');
});

test('a wrong method on any path is a JSON 405 with the methods the path supports in Allow', async () => {
  const paths = [...new Set(routes.map((r) => concrete(r.path)))];
  let checked = 0;
  for (const pathname of paths) {
    const allowed = methodsOn(routes, pathname);
    for (const method of METHODS.filter((m) => !allowed.includes(m))) {
      const res = await worker.fetch(pathname, {
        method,
        headers: isApi(pathname) ? { authorization: `Bearer ${keys.viewer}` } : {},
      });
      const label = `${method} ${pathname}`;
      await assertJsonError(res, 405, 'method_not_allowed', label);
      assert.equal(res.headers.get('allow'), allowed.join(', '), `${label}: Allow`);
      checked += 1;
    }
  }
  assert.ok(checked >= 60, `${checked} wrong methods`);
  // HEAD is not GET here: the answer names GET, and has no body.
  const head = await worker.fetch('/health', { method: 'HEAD' });
  assert.equal(head.status, 405);
  assert.equal(head.headers.get('allow'), 'GET');
});

// Schemathesis (unsupported_method) found these answered by the GET handler: workers-rs reads a
// method it has no variant for as GET.
test('a method beyond the common ones (QUERY, PROPFIND) is a 405 too, never the GET handler', async () => {
  for (const method of ['QUERY', 'PROPFIND']) {
    for (const pathname of ['/health', '/api/v1/agents', '/api/v1/calls/call_none/live', '/media/twilio/call_none']) {
      const res = await worker.fetch(pathname, {
        method,
        headers: isApi(pathname) ? { authorization: `Bearer ${keys.viewer}` } : {},
      });
      const label = `${method} ${pathname}`;
      const body = await assertJsonError(res, 405, 'method_not_allowed', label);
      assert.equal(res.headers.get('allow'), methodsOn(routes, pathname).join(', '), `${label}: Allow`);
      assert.match(body.error.message, new RegExp(`^${method} `), `${label}: names the method`);
    }
  }
});

test('a literal segment beside a parameter keeps both: Allow names both routes', async () => {
  const res = await worker.fetch('/api/v1/deliveries/redrive', {
    method: 'DELETE',
    headers: { authorization: `Bearer ${keys.viewer}` },
  });
  await assertJsonError(res, 405, 'method_not_allowed', 'DELETE redrive');
  assert.deepEqual(res.headers.get('allow').split(', ').sort(), ['GET', 'POST']);
});

test('without a credential a private path answers 401 before 404 or 405; public ones answer at once', async () => {
  for (const [method, pathname] of [
    ['DELETE', '/api/v1/agents'],
    ['PUT', '/api/v1/calls/call_none'],
    ['GET', '/api/v1/no-such-resource'],
    ['GET', '/api/v1/openapi.json/extra'],
    ['GET', '/api/v1'],
  ]) {
    const res = await worker.fetch(pathname, { method });
    await assertJsonError(res, 401, 'unauthorized', `${method} ${pathname}`);
    assert.equal(res.headers.get('allow'), null, `${method} ${pathname}: no Allow before a credential`);
  }
  const doc = await worker.fetch('/api/v1/openapi.json', { method: 'POST' });
  await assertJsonError(doc, 405, 'method_not_allowed', 'POST openapi.json');
  assert.equal(doc.headers.get('allow'), 'GET');
  await assertJsonError(await worker.fetch('/no-such-page'), 404, 'not_found', 'unknown public path');
  await assertJsonError(await worker.fetch('/voice/twilio/other', { method: 'POST' }), 404, 'not_found', 'unknown voice path');
  const authed = await worker.fetch('/api/v1/no-such-resource', { headers: { authorization: `Bearer ${keys.viewer}` } });
  await assertJsonError(authed, 404, 'not_found', 'unknown API path with a key');
});

test('every gated route refuses each role below its gate with 403, before its handler runs', async () => {
  let refused = 0;
  for (const route of routes) {
    const pathname = concrete(route.path);
    for (const role of REFUSED[route.gate]) {
      // A body that would be invalid everywhere: a 403 must come before validation.
      const res = await worker.fetch(pathname, {
        method: route.method,
        headers: { authorization: `Bearer ${keys[role]}`, 'content-type': 'application/json' },
        body: route.method === 'GET' ? undefined : '{"not": "valid"',
      });
      await assertJsonError(res, 403, 'forbidden', `${role} ${route.label}`);
      refused += 1;
    }
  }
  const mutating = routes.filter((r) => r.method !== 'GET' && r.gate !== 'Public' && !(r.label in READ_ONLY_POSTS));
  assert.ok(mutating.length >= 15, `${mutating.length} mutating routes`);
  assert.ok(refused >= mutating.length, `${refused} refusals`);
  for (const route of mutating) assert.ok(REFUSED[route.gate].includes('viewer'), `viewer refused on ${route.label}`);
});

test('a role its gate admits reaches the handler (which answers for the missing resource)', async () => {
  for (const route of routes.filter((r) => r.gate === 'Read' && r.method === 'GET' && r.path.includes('{'))) {
    const res = await worker.fetch(concrete(route.path), { headers: { authorization: `Bearer ${keys.viewer}` } });
    assert.notEqual(res.status, 403, `viewer on ${route.label}`);
    assert.ok(res.status < 500, `viewer on ${route.label}: ${res.status}`);
    await res.arrayBuffer();
  }
  const log = await worker.fetch('/api/v1/audit-log', { headers: { authorization: `Bearer ${keys.bootstrapless}` } });
  assert.equal(log.status, 200, 'a tenant admin passes Administer');
});

test('the request log names the route from the table', async () => {
  const id = `routes-log-${Date.now()}`;
  await (await worker.fetch('/api/v1/agents/ag_none', { headers: { authorization: `Bearer ${keys.viewer}`, 'x-request-id': id } })).arrayBuffer();
  const wrong = `${id}-405`;
  await (await worker.fetch('/api/v1/agents/ag_none', { method: 'PUT', headers: { authorization: `Bearer ${keys.viewer}`, 'x-request-id': wrong } })).arrayBuffer();
  const line = (rid) =>
    eventually(() => worker.logs().find((l) => l.msg === 'request' && l.request_id === rid), { message: `request log ${rid}` });
  assert.equal((await line(id)).route, 'GET /api/v1/agents/{id}');
  assert.equal((await line(wrong)).route, '/api/v1/agents/{id}');
});
