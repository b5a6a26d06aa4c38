// Call recordings end to end: an agent with `recording.enabled` speaks its disclosure first and
// has Twilio record the call (Call Recordings API with a RecordingStatusCallback); Twilio's signed
// recording-status callback queues a durable job that downloads the media with the account's
// credentials (the fake answers 500 once: the job retries), stores it in R2 and announces
// `call.recording.ready` with a short-lived signed link, which serves the same bytes. Forged
// callbacks, foreign media URLs and forged or expired links are refused. Real workerd (local
// D1 and R2); fake Twilio, Deepgram, OpenAI, ElevenLabs and a delivery target on 127.0.0.1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { eventually, sqlText, ROOT, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, subscribeTarget, twilioIncoming, openMediaStream, hangUp, parseMarkup, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTwilio, twilioSid, sendStatusCallback } from './fakes/twilio.mjs';
import { startFakeTelnyx } from './fakes/telnyx.mjs';
import { telnyxKeyPair, signTelnyx } from './fakes/media-clients.mjs';
import { startFakeTarget } from './fakes/target.mjs';

const ACCOUNT_SID = twilioSid('AC');
const RECORDED = '+15550003001';
const UNRECORDED = '+15550003002';
const TELNYX_RECORDED = '+15550003003';
const DEEPGRAM_TRANSCRIBED = '+15550003004';
const OPENAI_TRANSCRIBED = '+15550003005';
const DISCLOSURE = 'This call is recorded for quality.';
const TELNYX_KEYS = telnyxKeyPair('5a1f3c2a7d8e4f5061728394a5b6c7d8e9f00112233445566778899aabbccd01');
const TELNYX_API_KEY = 'KEY_telnyx_recordings';

let setup, worker, dg, openai, eleven, twilio, telnyx, target;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  telnyx = await startFakeTelnyx({ apiKey: TELNYX_API_KEY, signingKey: TELNYX_KEYS.privateKey });
  target = await startFakeTarget();
  setup = await startLiveWorker({
    vars: {
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      TELNYX_API_URL: telnyx.url, TELNYX_API_KEY, TELNYX_PUBLIC_KEY: TELNYX_KEYS.publicKey, TELNYX_RECORDING_ORIGINS: telnyx.storageUrl,
    },
  });
  ({ worker, dg, openai, eleven } = setup);
  const voice = { provider: 'elevenlabs', voice_id: 'rachel' };
  const recorded = await createAgent(worker, {
    name: 'recorded', system_prompt: 'You answer for Acme.', first_message: 'Hi, Acme here.', voice, session: QUIET_SESSION,
    recording: { enabled: true, disclosure: DISCLOSURE },
  });
  // Transcription is off unless asked for (a deliberate addition to the stored shape).
  assert.deepEqual(recorded.recording, { enabled: true, disclosure: DISCLOSURE, transcription: 'none', transcription_model: null });
  await createNumber(worker, RECORDED, recorded.id);
  await createNumber(worker, TELNYX_RECORDED, recorded.id);
  const plain = await createAgent(worker, { name: 'plain', system_prompt: 'You answer for Acme.', first_message: 'Hi.', voice, session: QUIET_SESSION });
  assert.equal(plain.recording, null, 'recording is off unless asked for');
  await createNumber(worker, UNRECORDED, plain.id);
  const byDeepgram = await createAgent(worker, {
    name: 'deepgram-transcribed', system_prompt: 'You answer for Acme.', first_message: 'Hi, Acme here.', voice, session: QUIET_SESSION,
    recording: { enabled: true, transcription: 'deepgram' },
  });
  assert.deepEqual(byDeepgram.recording, { enabled: true, disclosure: 'This call is recorded.', transcription: 'deepgram', transcription_model: null });
  await createNumber(worker, DEEPGRAM_TRANSCRIBED, byDeepgram.id);
  const byOpenai = await createAgent(worker, {
    name: 'openai-transcribed', system_prompt: 'You answer for Acme.', first_message: 'Hi, Acme here.', voice, session: QUIET_SESSION,
    recording: { enabled: true, transcription: 'openai', transcription_model: 'whisper-1' },
  });
  await createNumber(worker, OPENAI_TRANSCRIBED, byOpenai.id);
  await subscribeTarget(worker, target, ['call.recording.ready', 'call.recording.transcribed']);
});

after(async () => {
  await setup?.stop();
  await twilio?.close();
  await telnyx?.close();
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

/** A Telnyx call to `to` (TeXML webhook, then the media stream of `callControlId`); resolves once the greeting's first segment played. */
async function telnyxCall(to, callControlId) {
  const body = new URLSearchParams({ CallSid: callControlId, From: '+13122010094', To: to }).toString();
  const res = await worker.fetch('/voice/telnyx/incoming', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...signTelnyx(TELNYX_KEYS.privateKey, Math.floor(Date.now() / 1000), body) },
    body,
  });
  const markup = parseMarkup(await res.text());
  assert.equal(res.status, 200, markup.xml);
  const sttBefore = dg.connections.length;
  const media = await openMediaStream('telnyx', markup.stream, { connect: { callControlId } });
  await dg.waitForConnection(sttBefore, 10_000);
  await eventually(() => media.playback.echoed('t0-s0'), { timeout: 15_000, interval: 20, message: 'greeting played' });
  return { ...markup, ...media };
}

const mediaRequests = () => twilio.requests.filter((r) => r.method === 'GET' && /\/Recordings\/RE/.test(r.path));

test('agent settings: recording is validated', async () => {
  const bad = await worker.api('POST', '/api/v1/agents', {
    name: 'x', system_prompt: 'y', recording: { enabled: 'yes', disclosure: 'z'.repeat(501), transcription: 'whisper', transcription_model: 'nova 3&x=1' },
  });
  assert.equal(bad.status, 422, bad.text);
  const fields = bad.body.error.details.map((d) => d.field).sort();
  assert.deepEqual(fields, ['recording.disclosure', 'recording.enabled', 'recording.transcription', 'recording.transcription_model']);
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

test('a recorded Telnyx call: record_start (mp3, dual), the signed call.recording.saved → durable download of its pre-signed link (500 then 200, no credential) → R2 → one call.recording.ready; a replay queues nothing', async () => {
  const callControlId = `v3:${randomUUID()}`;
  const call = await telnyxCall(TELNYX_RECORDED, callControlId);
  const start = await eventually(() => telnyx.actions.find((a) => a.callControlId === callControlId && a.action === 'record_start'), { message: 'record_start sent' });
  assert.deepEqual(start.body, { format: 'mp3', channels: 'dual' });
  assert.equal(start.request.headers.authorization, `Bearer ${TELNYX_API_KEY}`);
  assert.equal(start.request.status, 200);
  await hangUp(call);
  const callId = call.callId;
  const audio = randomBytes(40_000);
  const saved = telnyx.recordingSaved(callControlId, audio);
  const webhook = `${worker.url}/webhooks/telnyx`;

  // Signed with another key: refused, nothing queued.
  const forged = await saved.send(webhook, { privateKey: telnyxKeyPair().privateKey });
  assert.equal(forged.status, 401, forged.text);
  assert.deepEqual(await worker.d1(`SELECT id FROM recordings WHERE call_id = ${sqlText(callId)}`), []);

  // The first download fails (storage 500): the job retries.
  telnyx.failStorage(1, 500);
  const res = await saved.send(webhook);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.type, 'telnyx.call.recording.saved', 'the carrier notice is not our call.recording.ready');
  assert.deepEqual(res.json.recording, { queued: true, refused: null });

  const delivery = await eventually(() => target.deliveries.find((d) => d.json?.type === 'call.recording.ready' && d.json.data.call_id === callId), { timeout: 30_000, message: 'call.recording.ready delivered' });
  const fetched = telnyx.storageRequests.filter((r) => r.path.includes([...telnyx.recordings.values()].find((r) => r.callControlId === callControlId).id));
  assert.deepEqual(fetched.map((r) => r.status), [500, 200], 'one failed download, then one that worked');
  assert.equal(fetched[1].path.endsWith('.mp3'), true);
  assert.equal(fetched[1].headers.authorization, undefined, 'a pre-signed link is fetched with no credential');
  const [row] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(callId)}`);
  assert.equal(row.provider, 'telnyx');
  assert.equal(row.status, 'stored');
  assert.equal(row.attempts, 2);
  assert.equal(row.size_bytes, audio.length);
  const link = new URL(delivery.json.data.recording.url, worker.url);
  const got = await fetch(new URL(link.pathname + link.search, worker.url));
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), audio);

  // Telnyx retrying the same webhook: a duplicate event, no second job, no second download.
  const again = await saved.send(webhook);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.duplicate, true);
  assert.equal(again.json.recording, undefined);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await worker.d1(`SELECT id FROM recordings WHERE call_id = ${sqlText(callId)}`)).length, 1);
  assert.equal(telnyx.storageRequests.filter((r) => r.path.includes(row.provider_recording_id)).length, 2);
  const ready = target.deliveries.filter((d) => d.json?.type === 'call.recording.ready' && d.json.data.call_id === callId);
  assert.equal(ready.length, 1, 'exactly one call.recording.ready: ours, with the signed link');
});

test('a Telnyx recording link to another host is never fetched: the refusal is recorded on a dead job', async () => {
  const callControlId = `v3:${randomUUID()}`;
  const call = await telnyxCall(TELNYX_RECORDED, callControlId);
  await eventually(() => telnyx.actions.find((a) => a.callControlId === callControlId && a.action === 'record_start'), { message: 'record_start sent' });
  await hangUp(call);
  const before = target.deliveries.length;
  const storageBefore = telnyx.storageRequests.length;
  const hostile = 'http://169.254.169.254/latest/meta-data/iam/security-credentials/';
  const res = await telnyx.recordingSaved(callControlId, randomBytes(100), { payload: { recording_urls: { mp3: hostile } } }).send(`${worker.url}/webhooks/telnyx`);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.recording.queued, false);
  assert.match(res.json.recording.refused, /not a recording of the configured account/);
  const [row] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(call.callId)}`);
  assert.equal(row.status, 'dead');
  assert.equal(row.attempts, 0, 'never attempted');
  assert.match(row.last_error, /not a recording of the configured account/);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(telnyx.storageRequests.length, storageBefore);
  assert.equal(target.deliveries.length, before, 'no call.recording.ready');
});

/** A recorded Twilio call to `to`, hung up, whose recording (`audio`) Twilio reports; resolves to {callId, recording}. */
async function recordedTwilioCall(to, audio) {
  const callSid = twilioSid('CA');
  const call = await twilioCall(to, callSid);
  const recording = await eventually(() => [...twilio.recordings.values()].find((r) => r.callSid === callSid), { message: 'recording started' });
  await hangUp(call);
  const res = await twilio.sendRecordingStatus(recording.sid, audio);
  assert.equal(res.status, 200, res.text);
  return { callId: call.callId, recording };
}

/** The worker's local R2 object `key` in the RECORDINGS bucket (wrangler's CLI on its state), or null when absent. */
async function r2Object(key) {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [
      path.join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'r2', 'object', 'get', `phone-agent-recordings/${key}`,
      '--local', '--persist-to', worker.state, '-c', path.join(worker.dir, 'wrangler.json'), '--pipe',
    ], { cwd: ROOT, env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' }, encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    if (/does not exist|not found|NoSuchKey/i.test(String(e.stderr ?? e.message))) return null;
    throw e;
  }
}

const sha16 = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);
const deliveredFor = (type, callId) => target.deliveries.find((d) => d.json?.type === type && d.json.data.call_id === callId);

test('deepgram transcription: a step of the job after the audio is stored; a Deepgram 503 is retried, the audio is never held back; call.recording.transcribed; GET …/recording/transcript (another tenant: 404)', async () => {
  dg.prerecorded({ status: 503 });
  dg.prerecorded({ utterances: [{ start: 0.1, end: 1.4, channel: 0, transcript: 'Hi, Acme here.' }, { start: 2.0, end: 3.1, channel: 1, transcript: 'I would like a table.' }], transcript: 'Hi, Acme here. I would like a table.' });
  const listensBefore = dg.prerecordedRequests.length;
  const audio = randomBytes(30_000);
  const { callId } = await recordedTwilioCall(DEEPGRAM_TRANSCRIBED, audio);

  // The audio is stored and announced whatever the transcription does.
  await eventually(() => deliveredFor('call.recording.ready', callId), { timeout: 30_000, message: 'call.recording.ready' });
  const event = await eventually(() => deliveredFor('call.recording.transcribed', callId), { timeout: 40_000, message: 'call.recording.transcribed' });
  const listens = dg.prerecordedRequests.slice(listensBefore);
  assert.deepEqual(listens.map((r) => r.status), [503, 200], 'one failed transcription, then one that worked');
  for (const r of listens) {
    assert.deepEqual(r.query, { model: 'nova-3', punctuate: 'true', utterances: 'true' });
    assert.equal(r.headers.authorization, 'Token dg-key');
    assert.equal(r.headers['content-type'], 'audio/mpeg');
    assert.deepEqual(r.rawBody, audio, 'the stored audio, whole');
  }
  const t = event.json.data.transcript;
  assert.equal(t.provider, 'deepgram');
  assert.equal(t.model, 'nova-3');
  assert.equal(t.text, 'Hi, Acme here. I would like a table.');
  assert.deepEqual(t.utterances, [{ start: 0.1, end: 1.4, text: 'Hi, Acme here.', channel: 0 }, { start: 2.0, end: 3.1, text: 'I would like a table.', channel: 1 }]);
  const [row] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(callId)}`);
  assert.equal(row.status, 'stored');
  assert.equal(row.transcription_status, 'done');
  assert.equal(row.transcription_attempts, 2);
  assert.equal(event.json.data.recording.id, row.id);

  const got = await worker.api('GET', `/api/v1/calls/${callId}/recording/transcript`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.status, 'done');
  assert.equal(got.body.recording_id, row.id);
  assert.equal(got.body.provider, 'deepgram');
  assert.equal(got.body.text, t.text);
  assert.deepEqual(got.body.utterances, t.utterances);

  // Another tenant's key learns nothing: the call is not theirs.
  const other = await worker.api('POST', '/api/v1/tenants', { name: 'Other recordings' });
  assert.equal(other.status, 201, other.text);
  const theirs = await worker.api('GET', `/api/v1/calls/${callId}/recording/transcript`, undefined, { key: other.body.api_key.key });
  assert.equal(theirs.status, 404, theirs.text);
});

test('openai transcription: multipart file + model + verbose_json; text and segments stored', async () => {
  const audio = randomBytes(20_000);
  const before = openai.transcriptionRequests.length;
  const { callId } = await recordedTwilioCall(OPENAI_TRANSCRIBED, audio);
  const event = await eventually(() => deliveredFor('call.recording.transcribed', callId), { timeout: 40_000, message: 'call.recording.transcribed' });
  const [req] = openai.transcriptionRequests.slice(before);
  assert.equal(req.status, 200);
  assert.equal(req.headers.authorization, 'Bearer sk-test');
  assert.equal(req.transcription.model, 'whisper-1');
  assert.equal(req.transcription.responseFormat, 'verbose_json');
  assert.equal(req.transcription.file.contentType, 'audio/mpeg');
  assert.deepEqual(req.transcription.file.data, audio);
  const t = event.json.data.transcript;
  assert.equal(t.provider, 'openai');
  assert.equal(t.text, `Recording ${sha16(audio)} transcribed.`, 'the transcript of these very bytes');
  assert.deepEqual(t.utterances, [{ start: 0, end: 1.5, text: `Recording ${sha16(audio)} transcribed.` }]);
});

test('a transcription the provider refuses (4xx) fails for good; the audio stays stored and downloadable', async () => {
  openai.transcriptionReply({ status: 400, message: 'Audio file might be corrupted or unsupported' });
  const audio = randomBytes(10_000);
  const { callId } = await recordedTwilioCall(OPENAI_TRANSCRIBED, audio);
  const ready = await eventually(() => deliveredFor('call.recording.ready', callId), { timeout: 30_000, message: 'call.recording.ready' });
  const row = await eventually(async () => {
    const [r] = await worker.d1(`SELECT * FROM recordings WHERE call_id = ${sqlText(callId)}`);
    return r?.transcription_status === 'failed' && r;
  }, { timeout: 30_000, message: 'transcription failed' });
  assert.equal(row.status, 'stored');
  assert.equal(row.transcription_attempts, 1, 'a 4xx is not retried');
  assert.match(row.transcription_error, /openai answered HTTP 400/);
  const got = await worker.api('GET', `/api/v1/calls/${callId}/recording/transcript`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.body.status, 'failed');
  assert.equal(got.body.text, null);
  const link = new URL(ready.json.data.recording.url, worker.url);
  const audioBack = await fetch(new URL(link.pathname + link.search, worker.url));
  assert.equal(audioBack.status, 200);
  assert.deepEqual(Buffer.from(await audioBack.arrayBuffer()), audio, 'the audio is intact');
  assert.equal(deliveredFor('call.recording.transcribed', callId), undefined);
});

test('POST …/recording/link: a fresh signed link for any role that may read the call (viewers may listen, as they may read the transcript); another tenant 404', async () => {
  const audio = randomBytes(12_000);
  const { callId } = await recordedTwilioCall(RECORDED, audio);
  await eventually(() => deliveredFor('call.recording.ready', callId), { timeout: 30_000, message: 'call.recording.ready' });
  const viewer = await worker.api('POST', '/api/v1/api-keys', { name: 'listener', role: 'viewer' });
  assert.equal(viewer.status, 201, viewer.text);
  for (const key of [TEST_VARS.ADMIN_API_KEY, viewer.body.key]) {
    const minted = await worker.api('POST', `/api/v1/calls/${callId}/recording/link`, undefined, { key });
    assert.equal(minted.status, 201, minted.text);
    assert.equal(minted.body.size_bytes, audio.length);
    assert.equal(minted.body.content_type, 'audio/mpeg');
    const link = new URL(minted.body.url, worker.url);
    assert.equal(link.pathname, `/api/v1/calls/${callId}/recording`);
    assert.ok(minted.body.expires_at > Date.now() / 1000 && minted.body.expires_at <= Date.now() / 1000 + 3605);
    const got = await fetch(new URL(link.pathname + link.search, worker.url));
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), audio);
  }
  const other = await worker.api('POST', '/api/v1/tenants', { name: 'Other listeners' });
  const theirs = await worker.api('POST', `/api/v1/calls/${callId}/recording/link`, undefined, { key: other.body.api_key.key });
  assert.equal(theirs.status, 404, 'another tenant learns nothing of the call');
  const none = await worker.api('POST', '/api/v1/calls/call_doesnotexist000000000000000/recording/link');
  assert.equal(none.status, 404);
  const unauthenticated = await fetch(`${worker.url}/api/v1/calls/${callId}/recording/link`, { method: 'POST' });
  assert.equal(unauthenticated.status, 401);
});

// Last: it deletes every recording of the tenant.
test('retention: the tenant\'s recording_retention_days (validated; 0 keeps forever); the cron deletes the R2 objects past it and marks the rows deleted', async () => {
  const [{ tenant_id: tenant }] = await worker.d1("SELECT tenant_id FROM recordings WHERE status = 'stored' LIMIT 1");
  const patch = (body, key) => worker.api('PATCH', `/api/v1/tenants/${tenant}`, body, key ? { key } : undefined);
  for (const bad of [-1, 36501, 'ten', true]) {
    const res = await patch({ recording_retention_days: bad });
    assert.equal(res.status, 422, res.text);
    assert.deepEqual(res.body.error.details.map((d) => d.field), ['recording_retention_days']);
  }
  const stored = await worker.d1(`SELECT id, call_id, r2_key FROM recordings WHERE status = 'stored' AND tenant_id = ${sqlText(tenant)}`);
  assert.ok(stored.length >= 3, `${stored.length} stored`);
  const transcribed = await worker.d1(`SELECT call_id FROM recordings WHERE transcription_status = 'done' AND tenant_id = ${sqlText(tenant)}`);
  assert.ok(transcribed.length >= 1);
  const linkOf = async (callId) => {
    const minted = await worker.api('POST', `/api/v1/calls/${callId}/recording/link`);
    assert.equal(minted.status, 201, minted.text);
    const u = new URL(minted.body.url, worker.url);
    return new URL(u.pathname + u.search, worker.url);
  };
  const links = await Promise.all(stored.map((r) => linkOf(r.call_id)));
  assert.ok((await r2Object(stored[0].r2_key))?.length > 0, 'the object is in R2 before');

  // 0: kept forever, whatever their age.
  const forever = await patch({ recording_retention_days: 0 });
  assert.equal(forever.status, 200, forever.text);
  assert.equal(forever.body.recording_retention_days, 0);
  await worker.scheduled();
  assert.equal((await worker.d1(`SELECT id FROM recordings WHERE status = 'stored' AND tenant_id = ${sqlText(tenant)}`)).length, stored.length);

  // One second: everything stored so far is past it at the next cron run.
  const short = await patch({ recording_retention_days: 1 / 86400 });
  assert.equal(short.status, 200, short.text);
  assert.ok(Math.abs(short.body.recording_retention_days - 1 / 86400) < 1e-15, String(short.body.recording_retention_days));
  await new Promise((r) => setTimeout(r, 1100));
  await worker.scheduled();
  const rows = await eventually(async () => {
    const all = await worker.d1(`SELECT * FROM recordings WHERE id IN (${stored.map((r) => sqlText(r.id)).join(', ')})`);
    return all.every((r) => r.status === 'deleted') && all;
  }, { timeout: 20_000, message: 'rows deleted' });
  for (const r of rows) {
    assert.ok(r.deleted_at > 0);
    assert.equal(r.transcript, null, 'the transcript goes with the recording');
  }
  // The objects are gone from R2 (read through the bucket the worker uses), the links dead.
  for (const link of links) assert.equal((await fetch(link)).status, 404);
  // (Read through wrangler's CLI, a few seconds each: the first and the last suffice.)
  for (const r of [stored[0], stored.at(-1)]) assert.equal(await r2Object(r.r2_key), null, `${r.r2_key} still in R2`);
  const minted = await worker.api('POST', `/api/v1/calls/${stored[0].call_id}/recording/link`);
  assert.equal(minted.status, 404, minted.text);
  const t = await worker.api('GET', `/api/v1/calls/${transcribed[0].call_id}/recording/transcript`);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.body.status, 'deleted');
  assert.equal(t.body.text, null);
  // Back to the deployment's default (RECORDING_RETENTION_DAYS, unset: forever).
  const reset = await patch({ recording_retention_days: null });
  assert.equal(reset.status, 200, reset.text);
  assert.equal(reset.body.recording_retention_days, null);
});
