// Webhook gateway end to end: every provider's signature over real HTTP, canonical events,
// dedupe, forwarding with Standard Webhooks signatures, retries, 410, dead-letter + redrive,
// filters, SSRF refusal, and no loss across a worker restart. Real workerd + local D1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startWorker, eventually, TEST_VARS, signedCallbackQuery } from './harness.mjs';
import { sendResendWebhook, resendEvent, signStandardWebhook, verifyStandardWebhook } from './fakes/resend.mjs';
import { sendStatusCallback, twilioCallParams, twilioSignature } from './fakes/twilio.mjs';
import { sendBlandWebhook } from './fakes/bland.mjs';
import { telnyxKeyPair, telnyxEvent, sendTelnyxWebhook, sendRetellWebhook } from './fakes/media-clients.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import { Webhook as SvixWebhook } from 'svix';
import { Webhook as StandardWebhook } from 'standardwebhooks';

const TELNYX = telnyxKeyPair('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
assert.equal(TELNYX.publicKey, TEST_VARS.TELNYX_PUBLIC_KEY);
const RESEND_SECRET = TEST_VARS.RESEND_WEBHOOK_SECRET;
let worker;

before(async () => {
  worker = await startWorker();
});
after(async () => {
  await worker?.stop();
});

/** Registers an endpoint for `target` (optionally filtered) and teaches the target its secret. */
async function addEndpoint(target, eventTypes) {
  const res = await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: eventTypes });
  assert.equal(res.status, 201, res.text);
  assert.match(res.body.secret, /^whsec_/);
  target.setSecret(res.body.secret);
  return res.body;
}

async function removeEndpoint(endpoint) {
  const res = await worker.api('DELETE', `/api/v1/endpoints/${endpoint.id}`);
  assert.equal(res.status, 200);
}

const uniqueId = (prefix) => `${prefix}_${randomBytes(8).toString('hex')}`;

// ---- verification, provider by provider ---------------------------------------------------------

test('resend: a valid signature is accepted and mapped; tampering, staleness and absence are 401', async () => {
  const url = `${worker.url}/webhooks/resend`;
  const ok = await sendResendWebhook(url, RESEND_SECRET, resendEvent('email.delivered'));
  assert.equal(ok.status, 200, ok.text);
  const body = JSON.parse(ok.text);
  assert.equal(body.type, 'email.delivered');
  assert.match(body.id, /^evt_/);

  const id = uniqueId('msg');
  const ts = Math.floor(Date.now() / 1000);
  const payload = JSON.stringify(resendEvent('email.bounced'));
  const headers = { 'content-type': 'application/json', ...signStandardWebhook(RESEND_SECRET, id, ts, payload) };
  const tampered = await worker.fetch('/webhooks/resend', { method: 'POST', headers, body: payload.replace('bounced', 'opened') });
  assert.equal(tampered.status, 401);
  const err = await tampered.json();
  assert.equal(err.error.code, 'invalid_signature');
  assert.ok(!JSON.stringify(err).includes(RESEND_SECRET.slice(6)), 'the secret never appears in errors');

  // Outside/inside the 300 s window by a margin: the clock moves while the test runs, and the
  // exact boundary is covered by the core's vectors.
  const nowSec = () => Math.floor(Date.now() / 1000);
  const stale = await sendResendWebhook(url, RESEND_SECRET, resendEvent('email.sent'), { timestamp: nowSec() - 310 });
  assert.equal(stale.status, 401);
  const future = await sendResendWebhook(url, RESEND_SECRET, resendEvent('email.sent'), { timestamp: nowSec() + 310 });
  assert.equal(future.status, 401);
  const edge = await sendResendWebhook(url, RESEND_SECRET, resendEvent('email.sent'), { timestamp: nowSec() - 290 });
  assert.equal(edge.status, 200, 'inside the window');

  const unsigned = await worker.fetch('/webhooks/resend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
  assert.equal(unsigned.status, 401);
  const wrongSecret = await sendResendWebhook(url, 'whsec_' + randomBytes(24).toString('base64'), resendEvent('email.sent'));
  assert.equal(wrongSecret.status, 401);
});

test('resend: a rotated secret list accepts either secret', async () => {
  const rotated = await startWorker({ vars: { RESEND_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64')} ${RESEND_SECRET}` } });
  try {
    const res = await sendResendWebhook(`${rotated.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.opened'));
    assert.equal(res.status, 200, res.text);
  } finally {
    await rotated.stop();
  }
});

test('standard: webhook-* headers are verified and the type passes through', async () => {
  const body = JSON.stringify({ type: 'invoice.paid', timestamp: new Date().toISOString(), data: { amount: 5 } });
  const headers = {
    'content-type': 'application/json',
    ...signStandardWebhook(TEST_VARS.STANDARD_WEBHOOK_SECRET, uniqueId('msg'), Math.floor(Date.now() / 1000), body, { prefix: 'webhook' }),
  };
  const res = await worker.fetch('/webhooks/standard', { method: 'POST', headers, body });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).type, 'invoice.paid');
  const bad = await worker.fetch('/webhooks/standard', { method: 'POST', headers, body: body + ' ' });
  assert.equal(bad.status, 401);
});

test('twilio: form callbacks signed over the URL verify on /webhooks/twilio and /voice/twilio/status', async () => {
  for (const path of ['/webhooks/twilio', '/voice/twilio/status']) {
    const params = twilioCallParams({ status: 'completed', CallDuration: '42' });
    const ok = await sendStatusCallback(`${worker.url}${path}`, TEST_VARS.TWILIO_AUTH_TOKEN, params);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).type, 'call.completed');
    const bad = await sendStatusCallback(`${worker.url}${path}`, 'not-the-token', params);
    assert.equal(bad.status, 401);
  }
  // Signed for the public URL (behind a proxy) but delivered locally: rejected without
  // PUBLIC_BASE_URL, since the worker cannot know that URL.
  const params = twilioCallParams({ status: 'ringing' });
  const proxied = await sendStatusCallback('https://agent.example.com/webhooks/twilio', TEST_VARS.TWILIO_AUTH_TOKEN, params, { via: worker.url });
  assert.equal(proxied.status, 401);
});

test('twilio: PUBLIC_BASE_URL lets requests signed for the public URL verify', async () => {
  const proxied = await startWorker({ vars: { PUBLIC_BASE_URL: 'https://agent.example.com' } });
  try {
    const params = twilioCallParams({ status: 'ringing' });
    const res = await sendStatusCallback('https://agent.example.com/webhooks/twilio?x=1', TEST_VARS.TWILIO_AUTH_TOKEN, params, { via: proxied.url });
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.parse(res.text).type, 'call.ringing');
  } finally {
    await proxied.stop();
  }
});

test('telnyx: Ed25519 over timestamp|body', async () => {
  const event = telnyxEvent('call.hangup', { call_control_id: 'v3:abc', hangup_cause: 'normal_clearing' });
  const ok = await sendTelnyxWebhook(`${worker.url}/webhooks/telnyx`, TELNYX.privateKey, event);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(JSON.parse(ok.text).type, 'call.completed');
  const other = telnyxKeyPair();
  const forged = await sendTelnyxWebhook(`${worker.url}/webhooks/telnyx`, other.privateKey, telnyxEvent('call.answered'));
  assert.equal(forged.status, 401);
  const stale = await sendTelnyxWebhook(`${worker.url}/webhooks/telnyx`, TELNYX.privateKey, telnyxEvent('call.answered'), {
    timestamp: Math.floor(Date.now() / 1000) - 400,
  });
  assert.equal(stale.status, 401);
});

test('bland: hex HMAC-SHA256 of the body', async () => {
  const payload = { call_id: uniqueId('bland'), status: 'completed', to: '+15555550100', from: '+15555550199', call_length: 1.5 };
  const ok = await sendBlandWebhook(`${worker.url}/webhooks/bland`, TEST_VARS.BLAND_WEBHOOK_SECRET, payload);
  assert.equal(ok.status, 200, ok.text);
  const bad = await sendBlandWebhook(`${worker.url}/webhooks/bland`, 'wrong', payload);
  assert.equal(bad.status, 401);
});

test('retell: v=<ms>,d=<hex> signature with a timestamp window', async () => {
  const payload = { event: 'call_ended', call: { call_id: uniqueId('retell'), call_status: 'ended', disconnection_reason: 'user_hangup' } };
  const ok = await sendRetellWebhook(`${worker.url}/webhooks/retell`, TEST_VARS.RETELL_API_KEY, payload);
  assert.equal(ok.status, 200, ok.text);
  const stale = await sendRetellWebhook(`${worker.url}/webhooks/retell`, TEST_VARS.RETELL_API_KEY, payload, { timestampMs: Date.now() - 10 * 60_000 });
  assert.equal(stale.status, 401);
  const bad = await sendRetellWebhook(`${worker.url}/webhooks/retell`, 'wrong-key', payload);
  assert.equal(bad.status, 401);
});

test('vapi: the shared secret header', async () => {
  const body = JSON.stringify({ message: { type: 'status-update', status: 'in-progress', call: { id: uniqueId('vapi') } } });
  const ok = await worker.fetch('/webhooks/vapi', { method: 'POST', headers: { 'content-type': 'application/json', 'x-vapi-secret': TEST_VARS.VAPI_WEBHOOK_SECRET }, body });
  assert.equal(ok.status, 200, await ok.text());
  const bad = await worker.fetch('/webhooks/vapi', { method: 'POST', headers: { 'content-type': 'application/json', 'x-vapi-secret': 'nope' }, body });
  assert.equal(bad.status, 401);
});

test('exotel: unsigned, so the token in the URL is required', async () => {
  const form = new URLSearchParams({ CallSid: uniqueId('exo'), Status: 'completed', From: '09999999999', To: '08888888888' });
  const ok = await worker.fetch(`/webhooks/exotel?token=${TEST_VARS.EXOTEL_WEBHOOK_TOKEN}`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
  });
  assert.equal(ok.status, 200, await ok.text());
  const bad = await worker.fetch('/webhooks/exotel?token=guess', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
  });
  assert.equal(bad.status, 401);
  const missing = await worker.fetch('/voice/exotel/status', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(),
  });
  assert.equal(missing.status, 401);
});

// ---- malformed input --------------------------------------------------------------------------

test('wrong content type is 415, oversized 413, unknown provider 404, signed garbage 400', async () => {
  const text = await worker.fetch('/webhooks/resend', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
  assert.equal(text.status, 415);
  assert.equal((await text.json()).error.code, 'unsupported_media_type');

  const huge = JSON.stringify({ type: 'email.sent', data: { blob: 'x'.repeat(300 * 1024) } });
  const big = await worker.fetch('/webhooks/resend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
  assert.equal(big.status, 413);
  assert.equal((await big.json()).error.code, 'payload_too_large');

  const unknown = await worker.fetch('/webhooks/paypal', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(unknown.status, 404);

  const garbage = '{"type": "email.sent", ';
  const headers = { 'content-type': 'application/json', ...signStandardWebhook(RESEND_SECRET, uniqueId('msg'), Math.floor(Date.now() / 1000), garbage) };
  const bad = await worker.fetch('/webhooks/resend', { method: 'POST', headers, body: garbage });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, 'invalid_payload');
});

test('a provider without a configured secret fails closed with a 5xx so it retries later', async () => {
  const bare = await startWorker({ vars: { BLAND_WEBHOOK_SECRET: null } });
  try {
    const res = await sendBlandWebhook(`${bare.url}/webhooks/bland`, 'anything', { call_id: 'c1', status: 'completed' });
    assert.equal(res.status, 503);
    assert.equal(JSON.parse(res.text).error.code, 'provider_not_configured');
  } finally {
    await bare.stop();
  }
});

// ---- dedupe and forwarding --------------------------------------------------------------------

test('a duplicate delivery of the same event creates one event and one delivery per endpoint', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.*']);
  try {
    const id = uniqueId('msg');
    const event = resendEvent('email.clicked');
    const first = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, event, { id });
    const second = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, event, { id });
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const a = JSON.parse(first.text);
    const b = JSON.parse(second.text);
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.equal(a.id, b.id);
    await target.waitFor((d) => d.length >= 1);
    const rows = await worker.d1(`SELECT count(*) AS n FROM webhook_events WHERE provider = 'resend' AND provider_event_id = '${id}'`);
    assert.equal(rows[0].n, 1);
    const deliveries = await worker.api('GET', `/api/v1/deliveries?event_id=${a.id}`);
    assert.equal(deliveries.body.data.length, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(target.deliveries.length, 1, 'delivered once');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('a replayed event id with another body leaves the first copy stored as it was', async () => {
  // The insert's conflict clause returns the stored id by rewriting the row; nothing of the
  // first copy may change (body, canonical payload, type, time received).
  const id = uniqueId('msg');
  const first = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.delivered', { subject: 'first' }), { id });
  assert.equal(first.status, 200, first.text);
  const columns = 'id, type, received_at, content_type, raw_body, payload, call_id, tenant_id';
  const [before] = await worker.d1(`SELECT ${columns} FROM webhook_events WHERE provider = 'resend' AND provider_event_id = '${id}'`);
  await new Promise((r) => setTimeout(r, 20));
  const replay = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.bounced', { subject: 'second' }), { id });
  assert.equal(replay.status, 200, replay.text);
  const answer = JSON.parse(replay.text);
  assert.equal(answer.duplicate, true);
  assert.equal(answer.id, JSON.parse(first.text).id);
  const after = await worker.d1(`SELECT ${columns} FROM webhook_events WHERE provider = 'resend' AND provider_event_id = '${id}'`);
  assert.deepEqual(after, [before]);
  assert.equal(JSON.parse(after[0].payload).data.subject, 'first');
});

test('concurrent copies of one event store it once: one is new, every other answers duplicate with its id', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.*']);
  try {
    const id = uniqueId('msg');
    const event = resendEvent('email.opened');
    const copies = 12;
    // Signed once, sent 12 times at once: what a provider's retry racing the original looks like.
    const replies = await Promise.all(Array.from({ length: copies }, () => sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, event, { id })));
    for (const r of replies) assert.equal(r.status, 200, r.text);
    const bodies = replies.map((r) => JSON.parse(r.text));
    assert.equal(bodies.filter((b) => b.duplicate === false).length, 1, 'exactly one copy is new');
    assert.equal(new Set(bodies.map((b) => b.id)).size, 1, 'every copy names the one stored event');
    const rows = await worker.d1(`SELECT id FROM webhook_events WHERE provider = 'resend' AND provider_event_id = '${id}'`);
    assert.deepEqual(rows.map((r) => r.id), [bodies[0].id]);
    await target.waitFor((d) => d.length >= 1);
    const deliveries = await worker.api('GET', `/api/v1/deliveries?event_id=${bodies[0].id}`);
    assert.equal(deliveries.body.data.length, 1, 'one delivery for the one endpoint');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(target.deliveries.length, 1, 'delivered once');
    // The request log line carries what the webhook did (one line per webhook, no second line).
    const lines = await eventually(() => {
      const found = worker.logs().filter((l) => l.msg === 'request' && l.path === '/webhooks/resend' && l.event_id === bodies[0].id);
      return found.length === copies ? found : null;
    }, { message: 'one request line per copy, naming the event' });
    assert.equal(lines.filter((l) => l.duplicate === false).length, 1);
    assert.ok(lines.every((l) => l.provider === 'resend' && l.type === 'email.opened'));
    assert.equal(worker.logs().filter((l) => l.msg === 'webhook accepted').length, 0);
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('forwarded events carry Standard Webhooks headers the target verifies, and the canonical body', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.delivered']);
  try {
    const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.delivered', { subject: 'Hello' }));
    const eventId = JSON.parse(sent.text).id;
    await target.waitFor((d) => d.length >= 1);
    const delivery = target.deliveries[0];
    assert.equal(delivery.verified, true, JSON.stringify(delivery.verification));
    assert.equal(delivery.id, eventId);
    assert.equal(delivery.json.type, 'email.delivered');
    assert.equal(delivery.json.data.provider, 'resend');
    assert.equal(delivery.json.data.payload.type, 'email.delivered');
    assert.ok(delivery.json.timestamp);
    const detail = await worker.api('GET', `/api/v1/events/${eventId}`);
    assert.equal(detail.status, 200);
    assert.equal(detail.body.deliveries[0].status, 'succeeded');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('a failing target is retried on schedule and delivered exactly once with the same webhook-id', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.complained']);
  try {
    target.failNext(2, 503);
    const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.complained'));
    const eventId = JSON.parse(sent.text).id;
    await target.waitFor((d) => d.some((x) => x.status === 200), 30_000);
    assert.equal(target.deliveries.length, 3);
    assert.deepEqual(target.deliveries.map((d) => d.status), [503, 503, 200]);
    assert.ok(target.deliveries.every((d) => d.id === eventId), 'same webhook-id on every attempt');
    assert.ok(target.deliveries.every((d) => d.verified), 'every attempt signed');
    const list = await worker.api('GET', `/api/v1/deliveries?event_id=${eventId}`);
    const delivery = await worker.api('GET', `/api/v1/deliveries/${list.body.data[0].id}`);
    assert.equal(delivery.body.status, 'succeeded');
    assert.deepEqual(delivery.body.attempt_log.map((a) => a.status_code), [503, 503, 200]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(target.deliveries.length, 3, 'nothing after success');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('410 Gone disables the endpoint', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.opened']);
  try {
    target.respondWith(410);
    await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.opened'));
    await target.waitFor((d) => d.length >= 1);
    const ep = await eventually(async () => {
      const res = await worker.api('GET', `/api/v1/endpoints/${endpoint.id}`);
      return res.body.status === 'disabled' && res.body;
    }, { message: 'endpoint disabled' });
    assert.match(ep.disabled_reason, /410/);
    await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.opened'));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(target.deliveries.length, 1, 'a disabled endpoint receives nothing');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('an exhausted schedule dead-letters the delivery; redrive then delivers it', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.delivery_delayed']);
  try {
    target.respondWith(500);
    const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.delivery_delayed'));
    const eventId = JSON.parse(sent.text).id;
    const dead = await eventually(async () => {
      const res = await worker.api('GET', `/api/v1/deliveries?event_id=${eventId}&status=dead`);
      return res.body.data[0];
    }, { timeout: 30_000, message: 'dead delivery' });
    assert.equal(dead.attempts, 4, 'first attempt + 3 retries');
    assert.equal(dead.last_status_code, 500);
    assert.equal(target.deliveries.length, 4);

    target.reset();
    const redrive = await worker.api('POST', '/api/v1/deliveries/redrive', { endpoint_id: endpoint.id });
    assert.equal(redrive.status, 202);
    assert.equal(redrive.body.redriven, 1);
    await target.waitFor((d) => d.some((x) => x.status === 200), 30_000);
    const after = await worker.api('GET', `/api/v1/deliveries/${dead.id}`);
    assert.equal(after.body.status, 'succeeded');
    assert.equal(target.deliveries.at(-1).id, eventId, 'same webhook-id on redrive');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('two endpoints with different filters get only their events', async () => {
  const emails = await startFakeTarget();
  const calls = await startFakeTarget();
  const a = await addEndpoint(emails, ['email.*']);
  const b = await addEndpoint(calls, ['call.completed']);
  try {
    await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.sent'));
    await sendStatusCallback(`${worker.url}/webhooks/twilio`, TEST_VARS.TWILIO_AUTH_TOKEN, twilioCallParams({ status: 'completed' }));
    await sendStatusCallback(`${worker.url}/webhooks/twilio`, TEST_VARS.TWILIO_AUTH_TOKEN, twilioCallParams({ status: 'ringing' }));
    await emails.waitFor((d) => d.length >= 1);
    await calls.waitFor((d) => d.length >= 1);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(emails.deliveries.map((d) => d.json.type), ['email.sent']);
    assert.deepEqual(calls.deliveries.map((d) => d.json.type), ['call.completed']);
  } finally {
    await removeEndpoint(a);
    await removeEndpoint(b);
    await emails.close();
    await calls.close();
  }
});

test('replaying an event re-sends it with the same webhook-id', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.failed', 'email.bounced']);
  try {
    const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.bounced'));
    const eventId = JSON.parse(sent.text).id;
    await target.waitFor((d) => d.length >= 1);
    const replay = await worker.api('POST', `/api/v1/events/${eventId}/replay`, {});
    assert.equal(replay.status, 202);
    await target.waitFor((d) => d.length >= 2);
    assert.equal(target.deliveries[1].id, eventId);
    assert.notEqual(target.deliveries[1].timestamp, undefined);
    assert.equal(target.deliveries[1].verified, true);
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('after a secret rotation both secrets sign until the grace period ends', async () => {
  const target = await startFakeTarget();
  const endpoint = await addEndpoint(target, ['email.scheduled', 'email.sent']);
  try {
    const rotated = await worker.api('POST', `/api/v1/endpoints/${endpoint.id}/rotate-secret`, { grace_seconds: 3600 });
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, endpoint.secret);
    await sendResendWebhook(`${worker.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.sent'));
    await target.waitFor((d) => d.length >= 1);
    const d = target.deliveries[0];
    assert.equal(d.headers['webhook-signature'].split(' ').length, 2);
    assert.ok(verifyStandardWebhook([rotated.body.secret], d.headers, d.request.rawBody).ok, 'new secret verifies');
    assert.ok(verifyStandardWebhook([endpoint.secret], d.headers, d.request.rawBody).ok, 'old secret still verifies');
  } finally {
    await removeEndpoint(endpoint);
    await target.close();
  }
});

test('a test event goes to that endpoint only, whatever its filter, signed, retried and listed', async () => {
  const target = await startFakeTarget();
  const bystander = await startFakeTarget();
  // The endpoint does not subscribe to webhook.test; the one taking every type must not get it.
  const endpoint = await addEndpoint(target, ['email.bounced']);
  const other = await addEndpoint(bystander, null);
  try {
    target.failNext(1, 500);
    const sent = await worker.api('POST', `/api/v1/endpoints/${endpoint.id}/test`);
    assert.equal(sent.status, 202, sent.text);
    assert.deepEqual(Object.keys(sent.body).sort(), ['delivery_id', 'endpoint_id', 'event_id', 'status', 'type']);
    assert.equal(sent.body.type, 'webhook.test');
    assert.equal(sent.body.endpoint_id, endpoint.id);
    assert.equal(sent.body.status, 'pending');
    // The first attempt gets the 500, the retry on DELIVERY_RETRY_SCHEDULE the 200.
    await target.waitFor((d) => d.length >= 2, 20_000);
    const [failed, delivered] = target.deliveries;
    assert.equal(failed.status, 500);
    assert.equal(delivered.status, 200);
    assert.equal(failed.id, sent.body.event_id, 'webhook-id is the event id');
    assert.equal(delivered.id, sent.body.event_id, 'and stays across retries');

    // The official libraries verify it with the endpoint's secret, and refuse another secret.
    const raw = delivered.request.rawBody.toString();
    assert.doesNotThrow(() => new SvixWebhook(endpoint.secret).verify(raw, delivered.headers));
    const payload = new StandardWebhook(endpoint.secret).verify(raw, delivered.headers);
    assert.equal(payload.type, 'webhook.test');
    assert.equal(payload.data.test, true);
    assert.equal(payload.data.endpoint_id, endpoint.id);
    assert.equal(payload.data.provider, 'phone-agent');
    assert.equal(payload.data.call_id, null);
    assert.throws(() => new SvixWebhook(other.secret).verify(raw, delivered.headers));

    const delivery = await eventually(async () => {
      const res = await worker.api('GET', `/api/v1/deliveries/${sent.body.delivery_id}`);
      return res.body.status === 'succeeded' && res.body;
    }, { message: 'test delivery succeeded' });
    assert.equal(delivery.event_id, sent.body.event_id);
    assert.equal(delivery.endpoint_id, endpoint.id);
    assert.equal(delivery.attempts, 2);
    assert.deepEqual(delivery.attempt_log.map((a) => a.status_code), [500, 200]);
    const event = await worker.api('GET', `/api/v1/events/${sent.body.event_id}`);
    assert.equal(event.body.type, 'webhook.test');
    assert.equal(event.body.provider, 'phone-agent');
    assert.deepEqual(event.body.deliveries.map((d) => [d.id, d.endpoint_id, d.status]), [[sent.body.delivery_id, endpoint.id, 'succeeded']]);
    assert.equal(bystander.deliveries.length, 0, 'no other endpoint gets the test');

    // Paused (or disabled) endpoints are refused at once; another tenant's or no endpoint is 404.
    assert.equal((await worker.api('PATCH', `/api/v1/endpoints/${endpoint.id}`, { status: 'paused' })).status, 200);
    const paused = await worker.api('POST', `/api/v1/endpoints/${endpoint.id}/test`);
    assert.equal(paused.status, 409, paused.text);
    assert.equal(paused.body.error.code, 'endpoint_not_enabled');
    assert.equal((await worker.api('POST', '/api/v1/endpoints/ep_nope/test')).status, 404);
  } finally {
    await removeEndpoint(endpoint);
    await removeEndpoint(other);
    await Promise.all([target.close(), bystander.close()]);
  }
});

test('endpoint API: validation, pagination, 404s', async () => {
  const bad = await worker.api('POST', '/api/v1/endpoints', { url: 'ftp://example.com', event_types: ['Email Sent', 5] });
  assert.equal(bad.status, 422);
  const fields = bad.body.error.details.map((f) => f.field).sort();
  assert.deepEqual(fields, ['event_types[0]', 'event_types[1]', 'url']);
  const missing = await worker.api('POST', '/api/v1/endpoints', {});
  assert.equal(missing.status, 422);
  const notJson = await worker.fetch('/api/v1/endpoints', {
    method: 'POST', headers: { authorization: `Bearer ${TEST_VARS.ADMIN_API_KEY}`, 'content-type': 'text/plain' }, body: 'url=x',
  });
  assert.equal(notJson.status, 415);
  const created = [];
  for (let i = 0; i < 3; i++) {
    created.push((await worker.api('POST', '/api/v1/endpoints', { url: `https://hooks.example.com/${i}`, status: 'paused' })).body);
  }
  const page1 = await worker.api('GET', '/api/v1/endpoints?limit=2&status=paused');
  assert.equal(page1.body.data.length, 2);
  assert.ok(page1.body.next_cursor);
  assert.equal(page1.body.data[0].secret, undefined, 'lists do not show secrets');
  const page2 = await worker.api('GET', `/api/v1/endpoints?limit=2&status=paused&cursor=${page1.body.next_cursor}`);
  assert.equal(page2.body.data.length, 1);
  assert.equal(page2.body.next_cursor, null);
  const ids = [...page1.body.data, ...page2.body.data].map((e) => e.id).sort();
  assert.deepEqual(ids, created.map((e) => e.id).sort());
  for (const e of created) await removeEndpoint(e);
  assert.equal((await worker.api('GET', `/api/v1/endpoints/${created[0].id}`)).status, 404);
  assert.equal((await worker.api('GET', '/api/v1/events/evt_nope')).status, 404);
  assert.equal((await worker.api('GET', '/api/v1/deliveries?cursor=garbage')).status, 400);
});

test('events are listed newest first with filters', async () => {
  const res = await worker.api('GET', '/api/v1/events?provider=resend&limit=2');
  assert.equal(res.status, 200);
  assert.equal(res.body.data.length, 2);
  assert.ok(res.body.data.every((e) => e.provider === 'resend'));
  assert.ok(res.body.data[0].received_at >= res.body.data[1].received_at);
  const typed = await worker.api('GET', '/api/v1/events?type=call.completed');
  assert.ok(typed.body.data.length >= 1);
  assert.ok(typed.body.data.every((e) => e.type === 'call.completed'));
});

// ---- safety -----------------------------------------------------------------------------------

test('endpoints on private addresses are refused when ALLOW_PRIVATE_TARGETS=false', async () => {
  const strict = await startWorker({ vars: { ALLOW_PRIVATE_TARGETS: 'false' } });
  try {
    for (const url of ['http://127.0.0.1:9/hook', 'https://127.0.0.1/hook', 'https://10.0.0.8/x', 'https://169.254.169.254/latest', 'https://localhost/x', 'https://[::1]/x', 'http://hooks.example.com/x']) {
      const res = await strict.api('POST', '/api/v1/endpoints', { url });
      assert.equal(res.status, 422, url);
      assert.equal(res.body.error.details[0].field, 'url');
    }
    const ok = await strict.api('POST', '/api/v1/endpoints', { url: 'https://hooks.example.com/x' });
    assert.equal(ok.status, 201);
  } finally {
    await strict.stop();
  }
});

test('a worker restart between attempts loses nothing', async () => {
  const first = await startWorker({ vars: { DELIVERY_RETRY_SCHEDULE: '2,2' } });
  const target = await startFakeTarget();
  let second;
  try {
    const endpoint = (await first.api('POST', '/api/v1/endpoints', { url: target.url })).body;
    target.setSecret(endpoint.secret);
    target.respondWith(500);
    const sent = await sendResendWebhook(`${first.url}/webhooks/resend`, RESEND_SECRET, resendEvent('email.delivered'));
    const eventId = JSON.parse(sent.text).id;
    await target.waitFor((d) => d.length >= 1);
    await first.stop({ keepState: true });
    target.reset();
    second = await startWorker({ vars: { DELIVERY_RETRY_SCHEDULE: '2,2' }, state: first.state });
    // A retry may have been in flight (leased) when the first worker died: the lease expires
    // after a minute and the cron sweep then sends it. Fire cron until it is delivered.
    await eventually(async () => {
      await second.scheduled();
      return target.deliveries.some((x) => x.status === 200);
    }, { timeout: 120_000, interval: 2000, message: 'delivered by the restarted worker' });
    assert.ok(target.deliveries.every((d) => d.id === eventId));
    const delivered = target.deliveries.filter((d) => d.status === 200);
    assert.equal(delivered.length, 1, 'delivered exactly once');
    assert.ok(delivered[0].verified);
  } finally {
    await second?.stop();
    await target.close();
  }
});

test('call status callbacks move the call forward only, recording each transition', async () => {
  const callId = uniqueId('call');
  const now = Date.now();
  await worker.d1(`INSERT INTO calls (id, tenant_id, direction, provider, status, to_number, created_at, updated_at)
    VALUES ('${callId}', 'ten_default', 'outbound', 'twilio', 'queued', '+15555550100', ${now}, ${now})`);
  const callSid = 'CA' + randomBytes(16).toString('hex');
  // The URL as the worker hands it to Twilio: call_id signed with the server key.
  const send = (status) => sendStatusCallback(`${worker.url}/voice/twilio/status?${signedCallbackQuery(callId)}`, TEST_VARS.TWILIO_AUTH_TOKEN,
    twilioCallParams({ callSid, status, direction: 'outbound-api' }));
  for (const status of ['ringing', 'in-progress', 'completed']) assert.equal((await send(status)).status, 200);
  // Late and repeated callbacks never move it backwards.
  assert.equal((await send('ringing')).status, 200);
  assert.equal((await send('completed')).status, 200);
  const [call] = await worker.d1(`SELECT status, provider_call_id, answered_at, ended_at FROM calls WHERE id = '${callId}'`);
  assert.equal(call.status, 'completed');
  assert.equal(call.provider_call_id, callSid);
  assert.ok(call.answered_at && call.ended_at);
  const history = await worker.d1(`SELECT from_status, to_status, source FROM call_events WHERE call_id = '${callId}' ORDER BY id`);
  assert.deepEqual(history.map((h) => `${h.from_status}>${h.to_status}`), ['queued>ringing', 'ringing>in_progress', 'in_progress>completed']);
  assert.ok(history.every((h) => h.source === 'webhook:twilio'));
  const events = await worker.api('GET', `/api/v1/events?call_id=${callId}`);
  assert.ok(events.body.data.length >= 3, 'events are linked to our call');
  assert.ok(events.body.data.every((e) => e.payload.data.call_id === callId));
});
