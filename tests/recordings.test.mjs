// Call recordings end to end: an agent with `recording.enabled` speaks its disclosure first and
// has Twilio record the call (Call Recordings API with a RecordingStatusCallback); Twilio's signed
// recording-status callback queues a durable job that downloads the media with the account's
// credentials (the fake answers 500 once: the job retries), stores it in R2 and announces
// `call.recording.ready` with a short-lived signed link, which serves the same bytes. Forged
// callbacks, foreign media URLs and forged or expired links are refused. Real workerd (local
// D1 and R2); fake Twilio, Deepgram, OpenAI, ElevenLabs and a delivery target on 127.0.0.1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { eventually, sqlText, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, subscribeTarget, twilioIncoming, openMediaStream, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTwilio, twilioSid, sendStatusCallback } from './fakes/twilio.mjs';
import { startFakeTarget } from './fakes/target.mjs';

const ACCOUNT_SID = twilioSid('AC');
const RECORDED = '+15550003001';
const UNRECORDED = '+15550003002';
const DISCLOSURE = 'This call is recorded for quality.';

let setup, worker, dg, eleven, twilio, target;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  target = await startFakeTarget();
  setup = await startLiveWorker({ vars: { TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID } });
  ({ worker, dg, eleven } = setup);
  const voice = { provider: 'elevenlabs', voice_id: 'rachel' };
  const recorded = await createAgent(worker, {
    name: 'recorded', system_prompt: 'You answer for Acme.', first_message: 'Hi, Acme here.', voice, session: QUIET_SESSION,
    recording: { enabled: true, disclosure: DISCLOSURE },
  });
  assert.deepEqual(recorded.recording, { enabled: true, disclosure: DISCLOSURE });
  await createNumber(worker, RECORDED, recorded.id);
  const plain = await createAgent(worker, { name: 'plain', system_prompt: 'You answer for Acme.', first_message: 'Hi.', voice, session: QUIET_SESSION });
  assert.equal(plain.recording, null, 'recording is off unless asked for');
  await createNumber(worker, UNRECORDED, plain.id);
  await subscribeTarget(worker, target, ['call.recording.ready']);
});

after(async () => {
  await setup?.stop();
  await twilio?.close();
  await target?.close();
});

/** A link's signature computed independently of the worker (the key of signedCallbackQuery). */
function linkSig(callId, expires) {
  const key = createHmac('sha256', TEST_VARS.ADMIN_API_KEY).update('phone-agent callback url v1').digest();
  return createHmac('sha256', key).update(`recording-link v1:${callId.length}:${callId}:${expires}`).digest('base64url');
}

/** A Twilio call to `to` whose media stream carries `callSid` (as Twilio's would); resolves once the greeting's first segment played. */
async function twilioCall(to, callSid) {
  const markup = await twilioIncoming(worker, to, { params: { CallSid: callSid } });
  assert.ok(markup.stream && markup.token, markup.xml);
  const sttBefore = dg.connections.length;
  const media = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: markup.callId }, connect: { callSid } });
  await dg.waitForConnection(sttBefore, 10_000);
  await eventually(() => media.playback.echoed('t0-s0'), { timeout: 15_000, interval: 20, message: 'greeting played' });
  return { ...markup, ...media };
}

const mediaRequests = () => twilio.requests.filter((r) => r.method === 'GET' && /\/Recordings\/RE/.test(r.path));

test('agent settings: recording is validated', async () => {
  const bad = await worker.api('POST', '/api/v1/agents', {
    name: 'x', system_prompt: 'y', recording: { enabled: 'yes', disclosure: 'z'.repeat(501) },
  });
  assert.equal(bad.status, 422, bad.text);
  const fields = bad.body.error.details.map((d) => d.field).sort();
  assert.deepEqual(fields, ['recording.disclosure', 'recording.enabled']);
});

test('a recorded call: disclosure first, recording started, callback → durable download (500 then 200) → R2 → call.recording.ready with a signed link', async () => {
  const callSid = twilioSid('CA');
  const spokenBefore = eleven.spokenTexts.length;
  const call = await twilioCall(RECORDED, callSid);
  // The disclosure is the first thing spoken, then the greeting.
  const spoken = await eventually(() => {
    const text = eleven.spokenTexts.slice(spokenBefore).join(' ');
    return text.includes('Hi, Acme here.') && text;
  }, { message: 'greeting spoken' });
  assert.ok(spoken.startsWith(DISCLOSURE), spoken);
  assert.ok(spoken.indexOf(DISCLOSURE) < spoken.indexOf('Hi, Acme here.'), spoken);

  // The worker asked Twilio to record this call, with its recording-status callback.
  const start = await eventually(() => twilio.requests.find((r) => r.path.endsWith(`/Calls/${callSid}/Recordings.json`)), { message: 'start-recording request' });
  assert.equal(start.method, 'POST');
  assert.equal(start.path, `/2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${callSid}/Recordings.json`);
  assert.equal(start.headers.authorization, `Basic ${Buffer.from(`${ACCOUNT_SID}:${TEST_VARS.TWILIO_AUTH_TOKEN}`).toString('base64')}`);
  const form = start.form();
  assert.equal(form.get('RecordingStatusCallback'), `${worker.url}/voice/twilio/recording`);
  assert.equal(form.get('RecordingStatusCallbackEvent'), 'completed');
  assert.equal(start.status, 201);
  await hangUp(call);
  const [recording] = [...twilio.recordings.values()].filter((r) => r.callSid === callSid);
  assert.ok(recording);
  const callId = call.callId;

  // A forged callback (signed with another token) is refused and queues nothing.
  const forgedParams = {
    AccountSid: ACCOUNT_SID, CallSid: callSid, RecordingSid: recording.sid, RecordingStatus: 'completed',
    RecordingUrl: `${twilio.url}/2010-04-01/Accounts/${ACCOUNT_SID}/Recordings/${recording.sid}`,
  };
  const forged = await sendStatusCallback(`${worker.url}/voice/twilio/recording`, 'not-the-token', forgedParams);
  assert.equal(forged.status, 401, forged.text);
  assert.equal(JSON.parse(forged.text).error.code, 'invalid_signature');
  assert.deepEqual(await worker.d1(`SELECT id FROM recordings WHERE call_id = ${sqlText(callId)}`), []);

  // The first media download fails (Twilio 500): the job retries with backoff and nothing is lost.
  twilio.failNext(1, 500, 20500, (r) => r.method === 'GET' && r.path.includes('/Recordings/'));
  const audio = randomBytes(48_000);
  const res = await twilio.sendRecordingStatus(recording.sid, audio);
  assert.equal(res.status, 200, res.text);
  assert.equal(JSON.parse(res.text).queued, true);

  const delivery = await eventually(() => target.deliveries.find((d) => d.json?.type === 'call.recording.ready' && d.json.data.call_id === callId), { timeout: 30_000, message: 'call.recording.ready delivered' });
  const media = mediaRequests().filter((r) => r.path.includes(recording.sid));
  assert.deepEqual(media.map((r) => r.status), [500, 200], 'one failed download, then one that worked');
  assert.equal(media[1].path, `/2010-04-01/Accounts/${ACCOUNT_SID}/Recordings/${recording.sid}.mp3`);
  assert.equal(media[1].headers.authorization, start.headers.authorization, 'fetched with the account credentials');
  const [row] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(callId)}`);
  assert.equal(row.status, 'stored');
  assert.equal(row.attempts, 2);
  assert.equal(row.size_bytes, audio.length);
  assert.match(row.r2_key, new RegExp(`^ten_[^/]+/${callId}/rec_[^/]+\\.mp3$`), 'a tenant-scoped key');

  const info = delivery.json.data.recording;
  assert.equal(info.size_bytes, audio.length);
  assert.equal(info.content_type, 'audio/mpeg');
  assert.equal(info.duration_seconds, 7);
  const link = new URL(info.url, worker.url);
  assert.equal(link.pathname, `/api/v1/calls/${callId}/recording`);
  assert.deepEqual([...link.searchParams.keys()].sort(), ['expires', 'sig'], 'no API key in the link');
  const expires = Number(link.searchParams.get('expires'));
  assert.ok(expires > Date.now() / 1000 && expires <= Date.now() / 1000 + 3600 + 5, 'short-lived');

  // The link serves the same bytes, with no credential.
  const got = await fetch(new URL(link.pathname + link.search, worker.url));
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('content-type'), 'audio/mpeg');
  assert.equal(got.headers.get('cache-control'), 'private, no-store');
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), audio);

  // Forged and expired links.
  const path = `${worker.url}/api/v1/calls/${callId}/recording`;
  const sig = link.searchParams.get('sig');
  const tampered = await fetch(`${path}?expires=${expires + 3600}&sig=${sig}`);
  assert.equal(tampered.status, 403, 'a longer expiry under the same signature is a forgery');
  assert.equal((await tampered.json()).error.code, 'invalid_link');
  assert.equal((await fetch(`${path}?expires=${expires}&sig=${'A'.repeat(43)}`)).status, 403);
  assert.equal((await fetch(path)).status, 403, 'no signature');
  const otherCall = `${worker.url}/api/v1/calls/call_0000000000000000000000000000/recording?expires=${expires}&sig=${sig}`;
  assert.equal((await fetch(otherCall)).status, 403, "one call's link opens no other call's recording");
  const past = Math.floor(Date.now() / 1000) - 10;
  const expired = await fetch(`${path}?expires=${past}&sig=${linkSig(callId, past)}`);
  assert.equal(expired.status, 410);
  assert.equal((await expired.json()).error.code, 'link_expired');
  // The independently computed signature is the worker's: the same link, still valid, works.
  assert.equal(linkSig(callId, expires), sig);

  // Twilio retrying the same callback queues nothing new.
  const again = await twilio.sendRecordingStatus(recording.sid, audio);
  assert.equal(again.status, 200);
  assert.equal(JSON.parse(again.text).queued, false);
  assert.equal((await worker.d1(`SELECT id FROM recordings WHERE call_id = ${sqlText(callId)}`)).length, 1);
});

test('a callback naming media outside the configured account is refused: the credentials never leave for it', async () => {
  const callSid = twilioSid('CA');
  const call = await twilioCall(RECORDED, callSid);
  await eventually(() => [...twilio.recordings.values()].find((r) => r.callSid === callSid), { message: 'recording started' });
  await hangUp(call);
  const before = target.deliveries.length;
  for (const url of [
    `http://127.0.0.1:9/2010-04-01/Accounts/${ACCOUNT_SID}/Recordings/RE${'0'.repeat(32)}`,
    `${twilio.url}/2010-04-01/Accounts/${twilioSid('AC')}/Recordings/RE${'0'.repeat(32)}`,
  ]) {
    const params = { AccountSid: ACCOUNT_SID, CallSid: callSid, RecordingSid: twilioSid('RE'), RecordingStatus: 'completed', RecordingUrl: url };
    const res = await sendStatusCallback(`${worker.url}/voice/twilio/recording`, TEST_VARS.TWILIO_AUTH_TOKEN, params);
    assert.equal(res.status, 400, res.text);
  }
  assert.deepEqual(await worker.d1(`SELECT id FROM recordings WHERE call_id = ${sqlText(call.callId)}`), []);
  assert.equal(target.deliveries.length, before);
});

test('a recording over 32 MiB is not stored: the download stops at the cap and the job is dead, with no event', async () => {
  const callSid = twilioSid('CA');
  const call = await twilioCall(RECORDED, callSid);
  const recording = await eventually(() => [...twilio.recordings.values()].find((r) => r.callSid === callSid), { message: 'recording started' });
  await hangUp(call);
  const before = target.deliveries.length;
  const res = await twilio.sendRecordingStatus(recording.sid, Buffer.alloc(32 * 1024 * 1024 + 1, 7));
  assert.equal(res.status, 200, res.text);
  const row = await eventually(async () => {
    const [r] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(call.callId)}`);
    return r?.status === 'dead' && r;
  }, { timeout: 30_000, message: 'job dead' });
  assert.equal(row.attempts, 1, 'not retried');
  assert.match(row.last_error, /larger than 33554432 bytes/);
  assert.equal(row.r2_key, null);
  const exp = Math.floor(Date.now() / 1000) + 60;
  const got = await fetch(`${worker.url}/api/v1/calls/${call.callId}/recording?expires=${exp}&sig=${linkSig(call.callId, exp)}`);
  assert.equal(got.status, 404, 'a valid link, but nothing stored');
  assert.equal(target.deliveries.length, before, 'no call.recording.ready');
});

test('an agent without recording: no disclosure, no recording requested', async () => {
  const callSid = twilioSid('CA');
  const spoken = eleven.spokenTexts.length;
  const requests = twilio.requests.length;
  const call = await twilioCall(UNRECORDED, callSid);
  assert.equal(eleven.spokenTexts.slice(spoken).join(' '), 'Hi.');
  await hangUp(call);
  assert.equal(twilio.requests.slice(requests).filter((r) => r.path.includes('/Recordings')).length, 0);
});
