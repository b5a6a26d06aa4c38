// Fault suite: storage failing during ingest (the provider gets a 5xx and nothing half-written
// remains), and a target that is slow and flaky for a long stretch (nothing lost, nothing
// delivered twice per endpoint).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, TEST_VARS } from './harness.mjs';
import { sendResendWebhook, resendEvent } from './fakes/resend.mjs';
import { startFakeTarget } from './fakes/target.mjs';

let worker;
before(async () => {
  worker = await startWorker({ vars: { DELIVERY_RETRY_SCHEDULE: '1,1,1,1,1,1,1,1,1,1' } });
});
after(async () => {
  await worker?.stop();
});

test('a D1 failure during ingest answers 5xx, stores nothing, and the retry is accepted once', async () => {
  const target = await startFakeTarget();
  const endpoint = (await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: ['email.bounced'] })).body;
  target.setSecret(endpoint.secret);
  try {
    // Break the write path the way a failing database would: the insert cannot succeed.
    await worker.d1('ALTER TABLE deliveries RENAME TO deliveries_broken');
    const id = 'msg_fault_d1';
    const event = resendEvent('email.bounced');
    const failed = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, event, { id });
    assert.equal(failed.status, 500, failed.text);
    const body = JSON.parse(failed.text);
    assert.equal(body.error.code, 'internal');
    assert.ok(!failed.text.includes('deliveries_broken'), 'storage details stay in the log');
    await worker.d1('ALTER TABLE deliveries_broken RENAME TO deliveries');
    const half = await worker.d1(`SELECT count(*) AS n FROM webhook_events WHERE provider_event_id = '${id}'`);
    assert.equal(half[0].n, 0, 'the event was not stored without its deliveries');

    // The provider retries the same message: stored and forwarded exactly once.
    const retried = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, event, { id });
    assert.equal(retried.status, 200, retried.text);
    assert.equal(JSON.parse(retried.text).duplicate, false);
    await target.waitFor((d) => d.length >= 1);
    const again = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, event, { id });
    assert.equal(JSON.parse(again.text).duplicate, true);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(target.deliveries.length, 1);
  } finally {
    await worker.api('DELETE', `/api/v1/endpoints/${endpoint.id}`);
    await target.close();
  }
});

test('a slow, flaky target for a long stretch: every event delivered exactly once per endpoint', async () => {
  const flaky = await startFakeTarget();
  const steady = await startFakeTarget();
  const a = (await worker.api('POST', '/api/v1/endpoints', { url: flaky.url, event_types: ['email.delivered'] })).body;
  const b = (await worker.api('POST', '/api/v1/endpoints', { url: steady.url, event_types: ['email.delivered'] })).body;
  flaky.setSecret(a.secret);
  steady.setSecret(b.secret);
  try {
    // Deterministic chaos: errors, throttles (429 with Retry-After, 502, 504) and redirects.
    for (const status of [500, 502, 503, 429, 504, 500, 302, 500, 408, 502]) {
      flaky.failNext(1, status, status === 429 ? { headers: { 'retry-after': '1' } } : status === 302 ? { headers: { location: 'http://127.0.0.1:1/' } } : undefined);
    }
    const ids = [];
    for (let i = 0; i < 12; i++) {
      const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, resendEvent('email.delivered', { subject: `flaky ${i}` }));
      assert.equal(sent.status, 200);
      ids.push(JSON.parse(sent.text).id);
    }
    const okIds = (t) => t.deliveries.filter((d) => d.status === 200).map((d) => d.id);
    await eventually(async () => {
      await worker.scheduled();
      return ids.every((id) => okIds(flaky).includes(id)) && ids.every((id) => okIds(steady).includes(id));
    }, { timeout: 120_000, interval: 1000, message: 'all events delivered to both endpoints' });
    for (const target of [flaky, steady]) {
      const delivered = okIds(target);
      assert.equal(delivered.length, ids.length, 'exactly once per endpoint');
      assert.equal(new Set(delivered).size, ids.length);
      assert.ok(target.deliveries.every((d) => d.verified), 'every attempt signed');
    }
    assert.ok(flaky.deliveries.length > ids.length, 'the flaky endpoint needed retries');
    const dead = await worker.api('GET', '/api/v1/deliveries?status=dead');
    assert.equal(dead.body.data.filter((d) => d.endpoint_id === a.id).length, 0);
  } finally {
    await worker.api('DELETE', `/api/v1/endpoints/${a.id}`);
    await worker.api('DELETE', `/api/v1/endpoints/${b.id}`);
    await flaky.close();
    await steady.close();
  }
});

test('a target slower than the 15 s timeout is retried, and the slow attempt is recorded as a timeout', async () => {
  const target = await startFakeTarget();
  const endpoint = (await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: ['email.opened'] })).body;
  target.setSecret(endpoint.secret);
  try {
    target.slow(17_000);
    const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, resendEvent('email.opened'));
    const eventId = JSON.parse(sent.text).id;
    await target.waitFor((d) => d.length >= 1);
    const delivery = await eventually(async () => {
      const list = await worker.api('GET', `/api/v1/deliveries?event_id=${eventId}`);
      const d = list.body.data[0];
      return d && d.attempts >= 1 && d.last_error && d;
    }, { timeout: 30_000, message: 'timed-out attempt recorded' });
    assert.match(delivery.last_error, /timed out/);
    target.reset();
    await eventually(async () => {
      await worker.scheduled();
      const d = await worker.api('GET', `/api/v1/deliveries/${delivery.id}`);
      return d.body.status === 'succeeded';
    }, { timeout: 120_000, interval: 2000, message: 'delivered after the timeout' });
  } finally {
    await worker.api('DELETE', `/api/v1/endpoints/${endpoint.id}`);
    await target.close();
  }
});
