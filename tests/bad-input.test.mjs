// Bad input on every route: truncated, oversized, binary and non-UTF-8 bodies, wrong content
// types, header injection, deep JSON nesting. Never a 5xx, always a JSON error with the request
// id, and never a crash: a panic resets the Wasm instance, which /health's instance id reveals.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TEST_VARS } from './harness.mjs';
import { connectWs } from './fakes/ws.mjs';
import { twilioSignature } from './fakes/twilio.mjs';

let worker;
let instanceBefore;
before(async () => {
  worker = await startWorker();
  instanceBefore = (await (await worker.fetch('/health')).json()).instance.id;
});
after(async () => {
  await worker?.stop();
});

const auth = { authorization: `Bearer ${TEST_VARS.ADMIN_API_KEY}` };
const nested = (depth) => '['.repeat(depth) + ']'.repeat(depth);
const BODIES = {
  empty: '',
  truncated: '{"type": "email.sent", "data": {"email_id": "',
  binary: Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x81, 0x00, 0x7f]),
  nonUtf8Json: Buffer.concat([Buffer.from('{"url": "https://x.example.com/'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
  deepJson: nested(100_000),
  deepObject: '{"a":'.repeat(5000) + '1' + '}'.repeat(5000),
  notObject: '[1, 2, 3]',
  hugeString: JSON.stringify({ url: 'https://x.example.com/' + 'a'.repeat(70_000) }),
};
const CONTENT_TYPES = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined];

const ROUTES = [
  ['POST', '/webhooks/resend'],
  ['POST', '/webhooks/standard'],
  ['POST', '/webhooks/twilio'],
  ['POST', '/webhooks/telnyx'],
  ['POST', '/webhooks/bland'],
  ['POST', '/webhooks/retell'],
  ['POST', '/webhooks/vapi'],
  ['POST', '/webhooks/exotel?token=' + TEST_VARS.EXOTEL_WEBHOOK_TOKEN],
  ['POST', '/voice/twilio/status'],
  ['POST', '/voice/twilio/incoming'],
  ['POST', '/api/v1/endpoints'],
  ['PATCH', '/api/v1/endpoints/ep_missing'],
  ['POST', '/api/v1/endpoints/ep_missing/rotate-secret'],
  ['POST', '/api/v1/events/evt_missing/replay'],
  ['POST', '/api/v1/deliveries/redrive'],
  ['POST', '/api/v1/calls'],
  ['POST', '/api/v1/agents'],
  ['GET', '/health'],
];

async function expectJsonError(res, label) {
  const text = await res.text();
  assert.ok(res.status < 500 || res.status === 501, `${label}: status ${res.status} ${text}`);
  assert.ok(res.headers.get('x-request-id'), `${label}: x-request-id`);
  if (res.status >= 400) {
    let body;
    assert.doesNotThrow(() => {
      body = JSON.parse(text);
    }, `${label}: JSON body, got ${text.slice(0, 80)}`);
    assert.equal(typeof body.error.code, 'string', label);
    assert.equal(body.error.request_id, res.headers.get('x-request-id'), label);
  }
}

test('every route answers malformed bodies with a JSON 4xx', async () => {
  for (const [method, path] of ROUTES) {
    for (const [name, body] of Object.entries(BODIES)) {
      for (const contentType of CONTENT_TYPES) {
        const headers = { ...(path.startsWith('/api') ? auth : {}), ...(contentType ? { 'content-type': contentType } : {}) };
        const res = await worker.fetch(path, { method, headers, body: method === 'GET' ? undefined : body });
        await expectJsonError(res, `${method} ${path} ${name} ${contentType}`);
      }
    }
  }
});

test('query strings, ids and cursors that are not ours are rejected cleanly', async () => {
  const paths = [
    '/api/v1/events?cursor=%00%ff', '/api/v1/events?limit=-1', '/api/v1/events?limit=99999999999999999999',
    '/api/v1/deliveries?status=%27%3B%20DROP%20TABLE%20deliveries%3B--', '/api/v1/endpoints/%2e%2e%2f%2e%2e',
    '/api/v1/calls/%00/session', '/api/v1/calls/' + 'x'.repeat(5000) + '/session', '/media/twilio/' + 'x'.repeat(500),
    '/webhooks/' + '%ff'.repeat(100), '/api/v1/events/evt_x?type=' + 'a'.repeat(10_000),
  ];
  for (const path of paths) {
    const res = await worker.fetch(path, { headers: auth });
    await expectJsonError(res, path);
  }
  const tables = await worker.d1("SELECT count(*) AS n FROM sqlite_master WHERE name = 'deliveries'");
  assert.equal(tables[0].n, 1);
});

test('header injection and hostile headers change nothing', async () => {
  const attempts = [
    { 'x-request-id': 'abc\u0000def' },
    { 'x-request-id': 'a'.repeat(10_000) },
    { authorization: 'Bearer ' + 'k'.repeat(10_000) },
    { authorization: 'Bearer test-admin-key extra' },
    { authorization: 'Basic dGVzdC1hZG1pbi1rZXk6' },
    { 'content-length': '999999999999' },
    { 'svix-id': 'x'.repeat(5000), 'svix-timestamp': '9'.repeat(40), 'svix-signature': 'v1,' + '='.repeat(300) },
    { 'webhook-signature': 'v1,'.repeat(2000) },
    { 'x-twilio-signature': '\u00ff\u00fe' },
    { 'telnyx-signature-ed25519': '!!!', 'telnyx-timestamp': '-1' },
    { 'x-retell-signature': 'v=NaN,d=zz' },
  ];
  for (const extra of attempts) {
    for (const path of ['/webhooks/resend', '/webhooks/telnyx', '/webhooks/retell', '/api/v1/endpoints']) {
      const headers = { 'content-type': 'application/json', ...extra };
      let res;
      try {
        res = await worker.fetch(path, { method: 'POST', headers, body: '{}' });
      } catch {
        continue; // the client itself refused the header (e.g. NUL): nothing reached the worker
      }
      await expectJsonError(res, `${path} ${Object.keys(extra)}`);
      const id = res.headers.get('x-request-id');
      assert.match(id, /^[A-Za-z0-9._-]{1,128}$/, 'request ids are sanitized');
    }
  }
});

test('garbage on a media stream is counted and skipped; the call keeps its state', async () => {
  // The media route serves only calls that exist.
  await worker.d1(`INSERT INTO calls (id, tenant_id, direction, provider, status, to_number, stream_token, created_at, updated_at)
    VALUES ('call_badinput', 'ten_default', 'inbound', 'twilio', 'ringing', '+15550000000', 'stk_badinput', 0, 0)`);
  // Signed like Twilio signs the upgrade, so the garbage reaches the session.
  const stream = `ws://127.0.0.1:${worker.port}/media/twilio/call_badinput`;
  const conn = await connectWs(stream, { headers: { 'x-twilio-signature': twilioSignature(TEST_VARS.TWILIO_AUTH_TOKEN, stream) } });
  conn.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  for (const frame of ['', '{', 'null', '[]', '{"event":"media","media":{"payload":"%%%"}}', '{"event":"start"}', 'x'.repeat(100_000)]) conn.send(frame);
  conn.socket.send(Buffer.from([0, 1, 2, 255]));
  conn.send(JSON.stringify({ event: 'stop', stop: {} }));
  await conn.closed;
  const session = await worker.api('GET', '/api/v1/calls/call_badinput/session');
  assert.equal(session.status, 200);
  assert.ok(session.body.events.some((e) => e.event === 'connected'));
  assert.ok(session.body.events.some((e) => e.event === 'stop'));
});

// Found by Schemathesis (tests/schemathesis.test.mjs): `stt.language: {}` was stored and ignored,
// and `5.0` (a whole number to JSON and JSON Schema) was refused where an integer is expected.
test('agent settings of the wrong type are refused; whole numbers written 5.0 are integers', async () => {
  const api = (body) => worker.api('POST', '/api/v1/agents', { name: 'Typed', system_prompt: 'Be brief.', ...body });
  for (const stt of [{ language: {} }, { model: 3 }]) {
    const res = await api({ stt });
    assert.equal(res.status, 422, `${JSON.stringify(stt)}: ${res.text}`);
    assert.deepEqual(res.body.error.details.map((d) => d.field), ['stt']);
  }
  const whole = await worker.fetch('/api/v1/agents', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{"name": "Whole", "system_prompt": "Be brief.", "retry": {"max_retries": 2.0, "spacing_seconds": 6e1}, "session": {"idle_reminder_ms": 5000.0}}',
  });
  const body = await whole.json();
  assert.equal(whole.status, 201, JSON.stringify(body));
  assert.deepEqual(body.retry, { max_retries: 2, spacing_seconds: 60 });
  assert.equal(body.session.idle_reminder_ms, 5000);
  const fraction = await api({ retry: { max_retries: 2.5 } });
  assert.equal(fraction.status, 422, fraction.text);
});

test('no request crashed the instance', async () => {
  const health = await (await worker.fetch('/health')).json();
  assert.equal(health.instance.id, instanceBefore, 'the Wasm instance was never reset by a panic');
});
