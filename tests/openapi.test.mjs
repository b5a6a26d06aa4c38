// The OpenAPI document and the route table (src/routes.rs) agree on the routes and on which need
// no key, and the document's example requests are valid: against the document's own schemas and
// against the running worker.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startWorker, UNDIALLED_TWILIO, ROOT } from './harness.mjs';
import { routeTable } from './route-table.mjs';

let worker;
let doc;
before(async () => {
  // The call example asks for an invite: e-mail must be configured (nothing listens on port 9).
  worker = await startWorker({
    vars: {
      DEFAULT_FROM_NUMBER: '+15550009999', PUBLIC_BASE_URL: 'https://agent.example.com', ...UNDIALLED_TWILIO,
      RESEND_API_KEY: 're_unused', EMAIL_FROM: 'Calls <calls@example.com>', RESEND_API_URL: 'http://127.0.0.1:9',
    },
  });
  const res = await worker.fetch('/api/v1/openapi.json');
  assert.equal(res.status, 200);
  doc = await res.json();
});
after(async () => {
  await worker?.stop();
});

/** Route templates the worker serves, e.g. "GET /api/v1/calls/{id}", from its route table. */
async function routerRoutes() {
  return new Set((await routeTable()).map((r) => r.label));
}

function documentedRoutes() {
  const routes = new Set();
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) routes.add(`${method.toUpperCase()} ${p}`);
  }
  return routes;
}

/** Enough of JSON Schema (2020-12 subset the document uses) to check examples. */
function validate(schema, value, where = '$') {
  if (schema.$ref) return validate(doc.components.schemas[schema.$ref.split('/').pop()], value, where);
  const errors = [];
  const types = schema.type === undefined ? null : [].concat(schema.type);
  const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
  if (types && !types.some((t) => t === typeOf(value) || (t === 'number' && typeof value === 'number'))) {
    return [`${where}: expected ${types.join('|')}, got ${typeOf(value)}`];
  }
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${where}: ${JSON.stringify(value)} not in enum`);
  if (schema.pattern && typeof value === 'string' && !new RegExp(schema.pattern).test(value)) errors.push(`${where}: pattern`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${where}: below minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${where}: above maximum`);
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const r of schema.required ?? []) if (!(r in value)) errors.push(`${where}.${r}: required`);
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties?.[k]) errors.push(...validate(schema.properties[k], v, `${where}.${k}`));
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errors.push(...validate(schema.items, v, `${where}[${i}]`)));
  return errors;
}

// The document is a static asset, not part of the wasm: the worker answers the route with the
// file's bytes and its own headers (the assets layer's ETag and caching headers do not leak).
test('the document is public/api/v1/openapi.json byte for byte, as JSON', async () => {
  const res = await worker.fetch('/api/v1/openapi.json');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.ok(res.headers.get('x-request-id'));
  assert.equal(res.headers.get('etag'), null);
  const served = Buffer.from(await res.arrayBuffer());
  const file = await readFile(path.join(ROOT, 'public', 'api', 'v1', 'openapi.json'));
  assert.ok(served.equals(file), `served ${served.length} bytes, the file has ${file.length}`);
});

test('the document is OpenAPI 3.1 and public', async () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.info.title);
  assert.ok(doc.components.securitySchemes.bearer);
});

test('every route the router serves is documented, and every documented route is served', async () => {
  const served = await routerRoutes();
  const documented = documentedRoutes();
  const missing = [...served].filter((r) => !documented.has(r));
  const extra = [...documented].filter((r) => !served.has(r));
  assert.deepEqual(missing, [], 'served but not documented');
  assert.deepEqual(extra, [], 'documented but not served');
});

test('the document marks exactly the public routes of the table as needing no key', async () => {
  const open = (await routeTable()).filter((r) => r.gate === 'Public').map((r) => r.label).sort();
  const documentedOpen = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(ops)) {
      const security = operation.security ?? doc.security;
      if (Array.isArray(security) && security.length === 0) documentedOpen.push(`${method.toUpperCase()} ${p}`);
    }
  }
  assert.deepEqual(documentedOpen.sort(), open);
});

test('every $ref resolves', () => {
  const refs = JSON.stringify(doc).match(/"#\/components\/[^"]+"/g) ?? [];
  assert.ok(refs.length > 0);
  for (const ref of refs) {
    const [kind, name] = ref.slice(14, -1).split('/');
    assert.ok(doc.components[kind]?.[name], ref);
  }
});

/** An operation's response for `status`, with a `$ref` to components.responses followed. */
const response = (operation, status) => {
  const r = operation.responses[status];
  return r?.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r;
};
/** The error codes a documented error response names (its schema's `error.code` enum). */
const codesOf = (r) => JSON.stringify(r?.content?.['application/json']?.schema ?? {}).match(/"enum":\[[^\]]*\]/g)?.join('') ?? '';

test('every keyed operation documents 401 and 429 (with Retry-After), and 403 where its gate refuses a role', async () => {
  const routes = await routeTable();
  for (const r of routes.filter((route) => route.gate !== 'Public')) {
    const operation = doc.paths[r.path][r.method.toLowerCase()];
    assert.match(codesOf(response(operation, '401')), /"unauthorized"/, `${r.label}: 401`);
    assert.match(codesOf(response(operation, '429')), /"rate_limited"/, `${r.label}: 429`);
    assert.ok(response(operation, '429').headers?.['Retry-After'], `${r.label}: Retry-After`);
    const refuses = r.gate !== 'Read' || r.path.endsWith('/live');
    assert.equal(Boolean(operation.responses['403']), refuses, `${r.label}: 403 exactly when a role is refused`);
  }
});

test('every error response names its codes, and a 405 carries Allow', () => {
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(ops)) {
      for (const status of Object.keys(operation.responses).filter((s) => Number(s) >= 400)) {
        const r = response(operation, status);
        if (JSON.stringify(r).includes('#/components/schemas/Health')) continue;
        assert.ok(codesOf(r), `${method.toUpperCase()} ${p} ${status}: error codes`);
      }
      const body = operation.requestBody;
      const keyed = !(Array.isArray(operation.security) && operation.security.length === 0);
      if (keyed && body?.content?.['application/json']) {
        for (const status of ['400', '413', '415']) assert.ok(operation.responses[status], `${method.toUpperCase()} ${p}: ${status} for a bad body`);
      }
      if (operation.parameters?.some((x) => x.name === 'limit')) {
        assert.match(codesOf(response(operation, '400')), /"invalid_pagination"/, `${method.toUpperCase()} ${p}: 400 invalid_pagination`);
      }
    }
  }
  const notAllowed = doc.components.responses.MethodNotAllowed;
  assert.ok(notAllowed.headers.Allow.required, 'a 405 documents its Allow header');
  assert.match(codesOf(notAllowed), /"method_not_allowed"/);
});

test('example requests validate against their schemas', () => {
  let count = 0;
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(ops)) {
      const content = operation.requestBody?.content?.['application/json'];
      if (!content) continue;
      assert.ok(content.example !== undefined, `${method} ${p} has an example`);
      assert.deepEqual(validate(content.schema, content.example), [], `${method} ${p}`);
      count += 1;
    }
  }
  assert.ok(count >= 10, `${count} examples`);
});

test('example requests are accepted by the worker', async () => {
  const example = (p, method) => structuredClone(doc.paths[p][method].requestBody.content['application/json'].example);
  const agent = await worker.api('POST', '/api/v1/agents', example('/api/v1/agents', 'post'));
  assert.equal(agent.status, 201, agent.text);
  const ids = { ag_example: agent.body.id };
  const withIds = (body) => JSON.parse(JSON.stringify(body).replace(/"ag_example"/g, JSON.stringify(ids.ag_example)));
  for (const [p, method, status] of [
    ['/api/v1/numbers', 'post', 201], ['/api/v1/calls', 'post', 201], ['/api/v1/endpoints', 'post', 201],
    ['/api/v1/api-keys', 'post', 201], ['/api/v1/tenants', 'post', 201], ['/api/v1/deliveries/redrive', 'post', 202],
  ]) {
    const res = await worker.api(method.toUpperCase(), p, withIds(example(p, method)));
    assert.equal(res.status, status, `${method} ${p}: ${res.text}`);
    assert.deepEqual(validate(doc.paths[p][method].responses[String(status)].content['application/json'].schema, res.body), [], `${p} response`);
  }
  const agentPatch = await worker.api('PATCH', `/api/v1/agents/${agent.body.id}`, example('/api/v1/agents/{id}', 'patch'));
  assert.equal(agentPatch.status, 200, agentPatch.text);
  assert.equal(agentPatch.body.first_message, 'Hello!');
  assert.equal(agentPatch.body.name, agent.body.name, 'unchanged fields are kept');
});
