// The call page plays the call's recording in headless Chromium against the real worker: a
// recorded Twilio call (fake Twilio, Deepgram, OpenAI, ElevenLabs), its recording stored in R2 and
// transcribed by Deepgram's pre-recorded API, then the call's page shows an <audio controls>
// player on a link minted for the page (POST …/recording/link, same origin, allowed by the
// dashboard's CSP) and the recording's transcript, for an admin and for a viewer (viewers may
// listen). Screenshots go to test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { eventually, sqlText, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, twilioIncoming, openMediaStream, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTwilio, twilioSid } from './fakes/twilio.mjs';
import { skipBrowser, launchBrowser, newPage, shotBoth } from './browser.mjs';

const ACCOUNT_SID = twilioSid('AC');
const NUMBER = '+15550004001';

let setup, worker, dg, twilio, browser;

before(async () => {
  if (skipBrowser) return;
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  [setup, browser] = await Promise.all([
    startLiveWorker({ vars: { TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID } }),
    launchBrowser(),
  ]);
  ({ worker, dg } = setup);
  const agent = await createAgent(worker, {
    name: 'recorded', system_prompt: 'You answer for Acme.', first_message: 'Hi, Acme here.',
    voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION,
    recording: { enabled: true, transcription: 'deepgram' },
  });
  await createNumber(worker, NUMBER, agent.id);
});

after(async () => {
  await browser?.close();
  await setup?.stop();
  await twilio?.close();
});

test('the call page plays the recording on a freshly minted link and shows its transcript; a viewer may listen', { skip: skipBrowser }, async () => {
  const callSid = twilioSid('CA');
  const markup = await twilioIncoming(worker, NUMBER, { params: { CallSid: callSid } });
  const sttBefore = dg.connections.length;
  const call = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: markup.callId }, connect: { callSid } });
  await dg.waitForConnection(sttBefore, 10_000);
  await eventually(() => call.playback.echoed('t0-s0'), { timeout: 15_000, interval: 20, message: 'greeting played' });
  const recording = await eventually(() => [...twilio.recordings.values()].find((r) => r.callSid === callSid), { message: 'recording started' });
  await hangUp(call);
  dg.prerecorded({ transcript: 'Hi, Acme here. A table for two, please.', utterances: [{ start: 0.2, end: 1.1, transcript: 'Hi, Acme here.' }, { start: 61.5, end: 63, channel: 1, transcript: 'A table for two, please.' }] });
  const audio = randomBytes(24_000);
  assert.equal((await twilio.sendRecordingStatus(recording.sid, audio)).status, 200);
  await eventually(async () => {
    const [r] = await worker.d1(`SELECT transcription_status FROM recordings WHERE call_id = ${sqlText(markup.callId)}`);
    return r?.transcription_status === 'done';
  }, { timeout: 40_000, message: 'stored and transcribed' });

  const viewer = await worker.api('POST', '/api/v1/api-keys', { name: 'listener', role: 'viewer' });
  assert.equal(viewer.status, 201, viewer.text);
  for (const [who, key] of [['admin', TEST_VARS.ADMIN_API_KEY], ['viewer', viewer.body.key]]) {
    const page = await newPage(browser, worker, { key });
    const violations = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    await page.goto(`${worker.url}/#/calls/${markup.callId}`);
    await page.getByRole('heading', { name: 'Recording', exact: true }).waitFor();
    const player = page.locator('audio#recording-player');
    await player.waitFor({ state: 'attached' });
    assert.equal(await player.getAttribute('controls'), '');
    const src = await player.getAttribute('src');
    assert.match(src, new RegExp(`^/api/v1/calls/${markup.callId}/recording\\?expires=\\d+&sig=[A-Za-z0-9_-]+$`), 'a same-origin signed link, no API key');
    // The browser fetches it as the player would: the stored bytes.
    const fetched = await page.evaluate(async (url) => {
      const res = await fetch(url);
      return { status: res.status, type: res.headers.get('content-type'), size: (await res.arrayBuffer()).byteLength };
    }, src);
    assert.deepEqual(fetched, { status: 200, type: 'audio/mpeg', size: audio.length });
    // The player itself loads it (random bytes do not decode: the load is what is checked here).
    await page.evaluate(() => { const a = document.getElementById('recording-player'); a.preload = 'auto'; a.load(); });
    await eventually(() => page.evaluate(() => document.getElementById('recording-player').networkState !== 2), { timeout: 10_000, message: 'player load settled' });
    const card = page.locator('section[aria-labelledby="recording-title"]');
    assert.match(await card.innerText(), /0:00\s+Hi, Acme here\./);
    assert.match(await card.innerText(), /1:01\s+A table for two, please\./);
    assert.deepEqual(violations, [], `no CSP violation (${who})`);
    const { overflow } = await shotBoth(page, `call-recording-${who}`);
    assert.ok(overflow <= 0, `no horizontal overflow at 390 px (${overflow})`);
    assert.deepEqual(page.errors, []);
    await page.context().close();
  }
});
