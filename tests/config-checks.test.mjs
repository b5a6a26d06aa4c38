// Configuration checked up front (issue 13, "First run"): /health reports per feature what is
// missing, scheduling refuses a call that could only fail later, a worker on another port than
// 8787 hands out stream URLs on its own port, an answered call whose stream never connects is
// hung up and failed, and Twilio's JSON-bodied (bodySHA256) callbacks are read like forms.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startWorker, eventually, ROOT, TEST_VARS } from './harness.mjs';
import { startFakeTwilio, sendStatusCallback, sendJsonCallback, twilioCallParams, twilioSid } from './fakes/twilio.mjs';
import { parseMarkup, openMediaStream } from './live-setup.mjs';

const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const AUTH_TOKEN = TEST_VARS.TWILIO_AUTH_TOKEN;
const STREAM_TIMEOUT_SECONDS = 3;

/** The settings `npm run dev` starts from: .dev.vars.example as scripts/dev.sh copies it. */
async function devVarsExample() {
  const text = await readFile(path.join(ROOT, '.dev.vars.example'), 'utf8');
  return Object.fromEntries(
    text.split('\n')
      .filter((line) => /^[A-Z0-9_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

let bare; // TEST_VARS only: no carrier REST credentials, no e-mail, no AI providers
let dev; // .dev.vars.example + the fake Twilio's account, on a port that is not 8787
let twilio;
let bareAgent;
let devAgent;
const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();
const agentBody = { name: 'Ava', system_prompt: 'You confirm appointments.', first_message: 'Hi, this is Ava.' };

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  const example = await devVarsExample();
  [bare, dev] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661' } }),
    startWorker({
      vars: {
        ...example,
        ADMIN_API_KEY: TEST_VARS.ADMIN_API_KEY,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        TWILIO_API_URL: twilio.url,
        DEFAULT_FROM_NUMBER: '+15017122661',
        STREAM_CONNECT_TIMEOUT_SECONDS: String(STREAM_TIMEOUT_SECONDS),
      },
    }),
  ]);
  bareAgent = (await bare.api('POST', '/api/v1/agents', agentBody)).body;
  devAgent = (await dev.api('POST', '/api/v1/agents', agentBody)).body;
  assert.ok(bareAgent?.id && devAgent?.id);
});

after(async () => {
  await Promise.all([bare?.stop(), dev?.stop(), twilio?.close()]);
});

test('/health says per feature which variables are missing, never their values', async () => {
  const res = await bare.fetch('/health');
  const text = await res.text();
  const body = JSON.parse(text);
  assert.equal(res.status, 200);
  // Today's fields stay.
  assert.equal(body.status, 'ok');
  assert.equal(body.checks.d1.ok, true);
  assert.equal(body.checks.config.ok, true);
  const f = body.features;
  assert.deepEqual(f.live_calls, { ok: false, missing: ['DEEPGRAM_API_KEY', 'OPENAI_API_KEY', 'ELEVENLABS_API_KEY'] });
  assert.deepEqual(f['scheduled_calls.twilio'], { ok: false, missing: ['TWILIO_ACCOUNT_SID'] });
  assert.deepEqual(f['scheduled_calls.bland'], { ok: false, missing: ['BLAND_API_KEY'] });
  assert.deepEqual(f.emails, { ok: false, missing: ['RESEND_API_KEY', 'EMAIL_FROM'] });
  assert.deepEqual(f['webhooks.resend'], { ok: true, missing: [] });
  assert.deepEqual(f['inbound_calls.twilio'], { ok: true, missing: [] });
  assert.deepEqual(f['carrier_control.telnyx'], { ok: false, missing: ['TELNYX_API_KEY'] });
  for (const [name, value] of Object.entries(TEST_VARS)) {
    if (/SECRET|TOKEN|KEY/.test(name) && value.length >= 5) assert.ok(!text.includes(value), `${name} leaked`);
  }

  const devHealth = await (await dev.fetch('/health')).json();
  assert.deepEqual(devHealth.features['scheduled_calls.twilio'], { ok: true, missing: [] });
});

test('scheduling a call the server cannot place is refused at once, naming the variable', async () => {
  const call = { to: '+15558675310', agent_id: bareAgent.id, start_at: inSeconds(3600) };
  // The default provider (Twilio) has no REST account: the server's problem, 503.
  const unconfigured = await bare.api('POST', '/api/v1/calls', call);
  assert.equal(unconfigured.status, 503, unconfigured.text);
  assert.equal(unconfigured.body.error.code, 'feature_unavailable');
  assert.match(unconfigured.body.error.message, /TWILIO_ACCOUNT_SID/);
  assert.deepEqual(unconfigured.body.error.details, { feature: 'scheduled_calls.twilio', missing: ['TWILIO_ACCOUNT_SID'] });

  // The request names Bland, which is not configured: 422 on that field.
  const bland = await dev.api('POST', '/api/v1/calls', { ...call, agent_id: devAgent.id, provider: 'bland' });
  assert.equal(bland.status, 422, bland.text);
  assert.deepEqual(bland.body.error.details.map((d) => [d.field, d.code, d.missing]), [['provider', 'feature_unavailable', ['BLAND_API_KEY']]]);

  // An invite is asked for and e-mail is not configured: 422 on contact.email.
  const invite = await dev.api('POST', '/api/v1/calls', { ...call, agent_id: devAgent.id, contact: { email: 'jo@example.com' } });
  assert.equal(invite.status, 422, invite.text);
  const [field] = invite.body.error.details;
  assert.equal(field.field, 'contact.email');
  assert.equal(field.code, 'feature_unavailable');
  assert.deepEqual(field.missing, ['RESEND_API_KEY', 'EMAIL_FROM']);
  assert.match(field.message, /EMAIL_FROM/);

  // The request's own mistakes still come first (the client can fix those whatever the server lacks).
  const invalid = await bare.api('POST', '/api/v1/calls', { ...call, agent_id: 'ag_missing' });
  assert.equal(invalid.status, 422);
  assert.equal(invalid.body.error.details[0].code, 'unknown_agent');

  // Nothing was stored by the refusals.
  for (const worker of [bare, dev]) {
    const list = await worker.api('GET', '/api/v1/calls');
    assert.deepEqual(list.body.data.filter((c) => c.to === call.to && c.start_at === call.start_at), []);
  }
});

/** Schedules a call on `dev` due in 2 s and waits for the fake Twilio's create-call request. */
async function dialOnDev() {
  const res = await dev.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: devAgent.id, start_at: inSeconds(2) });
  assert.equal(res.status, 201, res.text);
  const created = await eventually(
    () => twilio.createRequests.find((r) => (r.fields?.StatusCallback ?? '').includes(`call_id=${res.body.id}`)),
    { timeout: 30_000, message: 'twilio create call' },
  );
  return { call: res.body, create: created };
}

test('a worker on another port than 8787 (npm run dev with PORT) hands out stream URLs on its own port', async () => {
  assert.notEqual(dev.port, 8787);
  const { call, create } = await dialOnDev();
  const voiceUrl = new URL(create.fields.Url);
  assert.equal(voiceUrl.origin, dev.url, `voice URL ${voiceUrl}`);
  assert.equal(new URL(create.fields.StatusCallback).origin, dev.url);

  // Twilio fetches the voice URL when the callee answers; the TwiML's stream is on our port.
  const params = twilioCallParams({ callSid: create.callSid, accountSid: ACCOUNT_SID, status: 'in-progress', direction: 'outbound-api' });
  const answer = await sendStatusCallback(create.fields.Url, AUTH_TOKEN, params);
  assert.equal(answer.status, 200, answer.text);
  const { stream, callId } = parseMarkup(answer.text);
  assert.equal(callId, call.id);
  assert.equal(new URL(stream).host, `127.0.0.1:${dev.port}`, `stream URL ${stream}`);
});

test('an answered call whose media stream never connects is hung up and failed (stream_timeout)', async () => {
  const { call, create } = await dialOnDev();
  const sid = create.callSid;
  await eventually(async () => (await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status === 'queued', { message: 'queued' });
  const answered = await twilio.sendStatus(sid, 'in-progress');
  assert.equal(answered.status, 200, answered.text);
  const answeredAt = Date.now();
  assert.equal((await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status, 'in_progress');

  // No media socket ever opens: the scheduler's alarm ends the call at the deadline.
  const failed = await eventually(async () => {
    const row = (await dev.api('GET', `/api/v1/calls/${call.id}`)).body;
    return row.status === 'failed' && row;
  }, { timeout: 30_000, message: 'call failed by the stream deadline' });
  assert.ok(Date.now() - answeredAt >= (STREAM_TIMEOUT_SECONDS - 1) * 1000, 'not before the deadline');
  assert.match(failed.last_error, /^stream_timeout/);
  const last = failed.history.filter((h) => h.kind === 'status').at(-1);
  assert.equal(last.to, 'failed');
  assert.equal(last.detail.reason, 'stream_timeout');
  assert.equal(last.detail.hangup, 'sent');
  // The hang-up went through Twilio's REST API for that call.
  const hangup = twilio.modifications.find((m) => m.callSid === sid);
  assert.deepEqual(hangup?.params, { Status: 'completed' });
  assert.equal(twilio.calls.get(sid).status, 'completed');

  // Twilio's own `completed` callback afterwards does not move the call back.
  await twilio.sendStatus(sid, 'completed');
  assert.equal((await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status, 'failed');
});

test('a call whose stream connects in time is not ended by the deadline', async () => {
  const { call, create } = await dialOnDev();
  await eventually(async () => (await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status === 'queued', { message: 'queued' });
  const params = twilioCallParams({ callSid: create.callSid, accountSid: ACCOUNT_SID, status: 'in-progress', direction: 'outbound-api' });
  const markup = parseMarkup((await sendStatusCallback(create.fields.Url, AUTH_TOKEN, params)).text);
  assert.equal((await twilio.sendStatus(create.callSid, 'in-progress')).status, 200);
  // Twilio opens the stream from the TwiML, with the call's token.
  const media = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: markup.callId } });
  try {
    await eventually(async () => (await dev.api('GET', `/api/v1/calls/${call.id}/session`)).body?.events?.some?.((e) => /start/.test(JSON.stringify(e))), { message: 'stream started' });
    await new Promise((r) => setTimeout(r, (STREAM_TIMEOUT_SECONDS + 2) * 1000));
    await dev.scheduled();
    const row = (await dev.api('GET', `/api/v1/calls/${call.id}`)).body;
    assert.ok(!row.history.some((h) => h.detail?.reason === 'stream_timeout'), JSON.stringify(row.history));
    assert.doesNotMatch(row.last_error ?? '', /stream_timeout/);
    assert.deepEqual(twilio.modifications.filter((m) => m.callSid === create.callSid), []);
  } finally {
    media.stopAudio();
    media.client.close?.();
  }
});

test('Twilio JSON-bodied status callbacks (bodySHA256) are the same canonical event as forms', async () => {
  const callSid = twilioSid('CA');
  const params = { ...twilioCallParams({ callSid, status: 'completed', direction: 'outbound-api' }), CallDuration: '42', SequenceNumber: '4' };
  const url = `${dev.url}/webhooks/twilio?source=json`;
  const res = await sendJsonCallback(url, AUTH_TOKEN, params);
  assert.equal(res.status, 200, res.text);
  const ack = JSON.parse(res.text);
  assert.equal(ack.type, 'call.completed');
  assert.equal(ack.duplicate, false);
  const event = await dev.api('GET', `/api/v1/events/${ack.id}`);
  assert.equal(event.status, 200);
  assert.equal(event.body.provider_event_id, `${callSid}:completed:4`);

  // The same callback as a form is the same event (a duplicate), so both paths agree.
  const form = await sendStatusCallback(url, AUTH_TOKEN, params);
  assert.equal(form.status, 200, form.text);
  assert.equal(JSON.parse(form.text).duplicate, true);

  // A body that does not hash to the signed bodySHA256 is refused like any bad signature.
  const tampered = await sendJsonCallback(url, AUTH_TOKEN, { ...params, SequenceNumber: '5' }, { tamper: (b) => b.replace('"completed"', '"failed"') });
  assert.equal(tampered.status, 401, tampered.text);

  // The voice status route of one of our calls takes JSON too and moves the call.
  const { call, create } = await dialOnDev();
  await eventually(async () => (await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status === 'queued', { message: 'queued' });
  const ringing = twilioCallParams({ callSid: create.callSid, accountSid: ACCOUNT_SID, status: 'ringing', direction: 'outbound-api' });
  const cb = await sendJsonCallback(create.fields.StatusCallback, AUTH_TOKEN, { ...ringing, SequenceNumber: '1' });
  assert.equal(cb.status, 200, cb.text);
  assert.equal((await dev.api('GET', `/api/v1/calls/${call.id}`)).body.status, 'ringing');
});
