// Foundation: the worker runs in workerd with local D1/KV/DO, answers JSON everywhere, logs one
// line per request, fires cron, and its CallSession records a Twilio media stream.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { startWorker, eventually, ROOT } from './harness.mjs';
import { TwilioMediaClient } from './fakes/ws.mjs';

let worker;
before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.stop();
});

test('health reports D1, KV and config checks', async () => {
  const res = await worker.fetch('/health');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /application\/json/);
  assert.ok(res.headers.get('x-request-id'));
  const body = await res.json();
  assert.equal(body.status, 'ok');
  assert.equal(typeof body.version, 'string');
  assert.equal(body.checks.d1.ok, true);
  assert.equal(body.checks.kv.ok, true);
  assert.equal(body.checks.config.ok, true);
});

test('unknown routes get a JSON 404 carrying the request id', async () => {
  const res = await worker.fetch('/no/such/route');
  assert.equal(res.status, 404);
  const body = await res.json();
  assert.equal(body.error.code, 'not_found');
  assert.equal(body.error.request_id, res.headers.get('x-request-id'));
  assert.ok(body.error.message.length > 0);
});

test('a sane incoming x-request-id is propagated, a hostile one replaced', async () => {
  const res = await worker.fetch('/health', { headers: { 'x-request-id': 'trace-abc_123' } });
  assert.equal(res.headers.get('x-request-id'), 'trace-abc_123');
  await res.arrayBuffer();
  const bad = await worker.fetch('/health', { headers: { 'x-request-id': 'a b<script>' } });
  assert.notEqual(bad.headers.get('x-request-id'), 'a b<script>');
  assert.match(bad.headers.get('x-request-id'), /^req_[0-9a-z]{26}$/);
  await bad.arrayBuffer();
});

test('wrong method on a known route is a JSON 405', async () => {
  const res = await worker.fetch('/health', { method: 'DELETE' });
  assert.equal(res.status, 405);
  assert.equal((await res.json()).error.code, 'method_not_allowed');
});

test('every request logs one JSON line with method, route, status, duration and id', async () => {
  const res = await worker.fetch('/health', { headers: { 'x-request-id': 'log-check-1' } });
  await res.arrayBuffer();
  const line = await eventually(
    () => worker.logs().find((l) => l.msg === 'request' && l.request_id === 'log-check-1'),
    { message: 'request log line' },
  );
  assert.equal(line.method, 'GET');
  assert.equal(line.route, 'GET /health');
  assert.equal(line.status, 200);
  assert.equal(typeof line.duration_ms, 'number');
});

test('the API requires the bearer key', async () => {
  const none = await worker.fetch('/api/v1/calls');
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, 'unauthorized');
  const wrong = await worker.api('GET', '/api/v1/calls', undefined, { key: 'nope' });
  assert.equal(wrong.status, 401);
  const unknown = await worker.api('GET', '/api/v1/nothing-here');
  assert.equal(unknown.status, 404);
});

test('unknown webhook provider and carrier are 404s', async () => {
  const res = await worker.fetch('/webhooks/acme', { method: 'POST', body: '{}' });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, 'not_found');
  const media = await worker.fetch('/media/skype/call_1');
  assert.equal(media.status, 404);
  await media.arrayBuffer();
});

test('the media route refuses plain HTTP with 426', async () => {
  const res = await worker.fetch('/media/twilio/call_plain');
  assert.equal(res.status, 426);
  assert.equal((await res.json()).error.code, 'upgrade_required');
});

test('a Twilio media stream is recorded by the call session', async () => {
  const callId = 'call_foundation1';
  // The media route serves only calls that exist, to streams presenting the call's token.
  await worker.d1(`INSERT INTO calls (id, tenant_id, direction, provider, status, to_number, stream_token, created_at, updated_at)
    VALUES ('${callId}', 'ten_default', 'inbound', 'twilio', 'ringing', '+15550000000', 'abc', 0, 0)`);
  const client = await TwilioMediaClient.connect(`ws://127.0.0.1:${worker.port}/media/twilio/${callId}`);
  client.connected();
  client.start({ token: 'abc', tenant: 'acme' });
  await client.stream(10);
  client.send('{"event": "media", "media": '); // malformed: counted and skipped
  client.stop();
  const closed = await client.closed;
  assert.equal(closed.code, 1000);

  const session = await eventually(async () => {
    const res = await worker.api('GET', `/api/v1/calls/${callId}/session`);
    return res.status === 200 && res.body.events.some((e) => e.event === 'stop') && res.body;
  }, { message: 'session with stop event' });
  assert.equal(session.call_id, callId);
  assert.equal(session.carrier, 'twilio');
  assert.equal(session.stream_sid, client.streamSid);
  assert.equal(session.carrier_call_id, client.callSid);
  assert.equal(session.counters.media_frames, 10);
  assert.equal(session.counters.malformed_frames, 1);
  const names = session.events.map((e) => e.event);
  for (const name of ['socket_opened', 'connected', 'start', 'stop']) assert.ok(names.includes(name), name);
  const start = session.events.find((e) => e.event === 'start');
  assert.deepEqual(start.detail.custom_parameters, { token: '[redacted]', tenant: 'acme' });
  assert.equal(start.detail.media_format.sample_rate, 8000);
});

test('a call without a media session is a 404', async () => {
  const res = await worker.api('GET', '/api/v1/calls/call_never_connected/session');
  assert.equal(res.status, 404);
});

test('the cron handler runs on demand', async () => {
  await worker.scheduled();
  await eventually(() => worker.logs().find((l) => l.msg === 'scheduled'), { message: 'scheduled log' });
});

test('D1 migrations are applied locally', async () => {
  const rows = await worker.d1("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  const tables = rows.map((r) => r.name);
  for (const t of ['tenants', 'api_keys', 'agents', 'phone_numbers', 'calls', 'call_events', 'transcripts',
    'webhook_events', 'endpoints', 'deliveries', 'delivery_attempts', 'audit_log']) {
    assert.ok(tables.includes(t), `table ${t}`);
  }
});

test('the dashboard is served from public/', async () => {
  const res = await worker.fetch('/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/html/);
  assert.match(await res.text(), /phone-agent/);
});

test('_routes.json and wrangler.toml agree on the paths that reach the worker', async () => {
  const routes = JSON.parse(await readFile(path.join(ROOT, '_routes.json'), 'utf8'));
  const config = parseToml(await readFile(path.join(ROOT, 'wrangler.toml'), 'utf8'));
  assert.deepEqual([...config.assets.run_worker_first].sort(), [...routes.include].sort());
  assert.deepEqual(routes.exclude, []);
});

test('an invalid setting is named in health and in API errors', async () => {
  const broken = await startWorker({ vars: { WEBHOOK_TOLERANCE_SECONDS: 'five minutes' } });
  try {
    const health = await broken.fetch('/health');
    assert.equal(health.status, 503);
    const body = await health.json();
    assert.equal(body.checks.config.ok, false);
    assert.match(body.checks.config.error, /WEBHOOK_TOLERANCE_SECONDS/);
    const api = await broken.api('GET', '/api/v1/calls');
    assert.equal(api.status, 500);
    assert.equal(api.body.error.code, 'config_error');
    assert.match(api.body.error.message, /WEBHOOK_TOLERANCE_SECONDS is invalid/);
  } finally {
    await broken.stop();
  }
});

test('a missing admin key is reported as a configuration error', async () => {
  const broken = await startWorker({ vars: { ADMIN_API_KEY: null } });
  try {
    const api = await broken.api('GET', '/api/v1/calls', undefined, { key: 'anything' });
    assert.equal(api.status, 500);
    assert.equal(api.body.error.code, 'config_error');
    assert.match(api.body.error.message, /ADMIN_API_KEY/);
  } finally {
    await broken.stop();
  }
});
