// Live-call set-up shared by the end-to-end tests and the live benchmark: the "instant" provider
// fakes (Deepgram, OpenAI, ElevenLabs on 127.0.0.1) and a worker pointed at them, an agent with
// a number, the carrier's incoming-call webhook and its media stream (real-time playback of the
// agent's audio, real-time caller audio).

import assert from 'node:assert/strict';
import { startWorker, eventually, within, sqlText, TEST_VARS } from './harness.mjs';
import { startFakeDeepgram } from './fakes/deepgram.mjs';
import { startFakeOpenAI } from './fakes/openai.mjs';
import { startFakeElevenLabs } from './fakes/elevenlabs.mjs';
import { TwilioMediaClient } from './fakes/ws.mjs';
import { TelnyxMediaClient, ExotelMediaClient } from './fakes/media-clients.mjs';
import { sendStatusCallback, twilioCallParams } from './fakes/twilio.mjs';
import { Playback, streamCallerAudio } from './fakes/playback.mjs';

/** Agent session timers off: tests that need idle or max-duration behaviour set their own. */
export const QUIET_SESSION = Object.freeze({ idle_reminder_ms: null, idle_hangup_ms: null, false_interruption_ms: null });

/** The keys the provider fakes of startProviderFakes accept (and give the worker). */
const FAKE_KEYS = Object.freeze({ deepgram: 'dg-key', openai: 'sk-test', elevenlabs: 'xi-key' });

/**
 * Starts fake Deepgram, OpenAI and ElevenLabs with no artificial delay between chunks (timings
 * measure the worker); `deepgram`, `openai`, `elevenlabs` are extra options for each fake.
 * Resolves to {dg, openai, eleven, vars, close()}: `vars` are the worker settings (keys and
 * URLs) that point a worker at them. Shared by the live tests and `npm run demo`.
 */
export async function startProviderFakes({ deepgram = {}, openai: openaiOptions = {}, elevenlabs = {} } = {}) {
  const fakes = [];
  const started = (fake) => {
    fakes.push(fake);
    return fake;
  };
  const close = () => Promise.all(fakes.map((f) => f.close()));
  try {
    const dg = started(await startFakeDeepgram({ apiKey: FAKE_KEYS.deepgram, speakChunkDelayMs: 0, idleTimeoutMs: 10_000, ...deepgram }));
    const openai = started(await startFakeOpenAI({ apiKey: FAKE_KEYS.openai, speechChunkDelayMs: 0, ...openaiOptions }));
    const eleven = started(await startFakeElevenLabs({ apiKey: FAKE_KEYS.elevenlabs, chunkDelayMs: 0, ...elevenlabs }));
    const vars = {
      DEEPGRAM_API_KEY: FAKE_KEYS.deepgram, DEEPGRAM_URL: dg.url,
      OPENAI_API_KEY: FAKE_KEYS.openai, OPENAI_BASE_URL: openai.url, OPENAI_MODEL: 'gpt-test',
      ELEVENLABS_API_KEY: FAKE_KEYS.elevenlabs, ELEVENLABS_URL: eleven.url,
    };
    return { dg, openai, eleven, vars, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Starts the provider fakes (startProviderFakes, with its `deepgram`, `openai`, `elevenlabs`
 * options), then a worker whose provider keys and URLs point at them. `vars` are merged over
 * those (and over TEST_VARS); `config` is another wrangler config for startWorker (e.g. the
 * profiling build's). Resolves to {worker, dg, openai, eleven, stop()}; `stop` stops the worker,
 * then closes the fakes.
 */
export async function startLiveWorker({ vars = {}, config, ...fakeOptions } = {}) {
  const fakes = await startProviderFakes(fakeOptions);
  try {
    const worker = await startWorker({ vars: { ...fakes.vars, ...vars }, ...(config ? { config } : {}) });
    const { dg, openai, eleven } = fakes;
    return {
      worker, dg, openai, eleven,
      async stop() {
        await worker.stop();
        await fakes.close();
      },
    };
  } catch (e) {
    await fakes.close();
    throw e;
  }
}

/** Creates an agent through the API; resolves to the created agent (asserts the 201). */
export async function createAgent(worker, fields) {
  const res = await worker.api('POST', '/api/v1/agents', fields);
  assert.equal(res.status, 201, res.text);
  return res.body;
}

/** Routes `number` to `agentId` through the API; resolves to the created number (asserts the 201). */
export async function createNumber(worker, number, agentId, fields = {}) {
  const res = await worker.api('POST', '/api/v1/numbers', { number, agent_id: agentId, ...fields });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

/** Subscribes the fake delivery `target` to `eventTypes` (asserts the 201, gives it the secret). */
export async function subscribeTarget(worker, target, eventTypes) {
  const res = await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: eventTypes });
  assert.equal(res.status, 201, res.text);
  target.setSecret(res.body.secret);
  return res.body;
}

/** The call's row in D1 (`calls`), as stored. */
export async function callRow(worker, id) {
  const [row] = await worker.d1(`SELECT * FROM calls WHERE id = ${sqlText(id)}`);
  return row;
}

/** The live session's state (GET /api/v1/calls/{id}/session; asserts the 200). */
export async function sessionState(worker, id) {
  const res = await worker.api('GET', `/api/v1/calls/${id}/session`);
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** Waits until the call is completed with its summary stored (`timeout` ms at most); resolves to its row. */
export function completedWithSummary(worker, callId, { timeout = 20_000 } = {}) {
  return eventually(async () => {
    const row = await callRow(worker, callId);
    return row.status === 'completed' && row.summary && row;
  }, { timeout, message: `call ${callId} completed with a summary` });
}

/**
 * The caller hangs up a call from startTwilioCall/openMediaStream: caller audio stops, the
 * carrier sends `stop`; resolves to the close once the worker closed the socket (rejects after
 * `timeout` ms).
 */
export async function hangUp(call, { timeout = 10_000 } = {}) {
  call.stopAudio();
  call.client.stop();
  return within(call.client.closed, timeout, 'hang-up');
}

/** What the incoming-call markup (TwiML / TeXML) connects to: {xml, stream, token, callId}. */
export function parseMarkup(xml) {
  const stream = /<Stream url="([^"]+)"/.exec(xml)?.[1]?.replaceAll('&amp;', '&');
  const token = /<Parameter name="token" value="([^"]+)"\/>/.exec(xml)?.[1];
  const callId = stream ? /\/media\/\w+\/([^?"]+)/.exec(stream)?.[1] : undefined;
  return { xml, stream, token, callId };
}

/**
 * Twilio's signed voice webhook for a call to `to` (`from`, `params`: more call parameters;
 * `path`: another webhook path; `authToken`: the worker's TWILIO_AUTH_TOKEN, default the
 * harness's). Asserts a 200 with XML; resolves to parseMarkup's result.
 */
export async function twilioIncoming(worker, to, { from, path = '/voice/twilio/incoming', params = {}, authToken = TEST_VARS.TWILIO_AUTH_TOKEN } = {}) {
  const res = await sendStatusCallback(`${worker.url}${path}`, authToken, twilioCallParams({ to, from, ...params }));
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers.get('content-type'), /xml/);
  return parseMarkup(res.text);
}

/** Each carrier's media client and its audio: frame length, bytes per ms, a silent frame. */
const CARRIERS = {
  twilio: { Client: TwilioMediaClient, audio: { frameMs: 20, bytesPerMs: 8, silence: () => Buffer.alloc(160, 0xff) } },
  telnyx: { Client: TelnyxMediaClient, audio: { bytesPerMs: 8 } },
  exotel: { Client: ExotelMediaClient, audio: { bytesPerMs: 16 } },
};

/**
 * Opens a `carrier` media stream to `url` and plays the carrier's part: `connected`, `start`
 * with the custom parameters `start`, real-time playback of what the worker sends (marks echoed
 * once played) and real-time caller audio (silence) until `stopAudio()`. `connect` goes to the
 * client's `connect` (e.g. Twilio's streamSid/callSid); `audio(client)` starts the caller audio
 * and returns its stop (default: streamCallerAudio). Resolves to {client, playback, stopAudio}.
 */
export async function openMediaStream(carrier, url, { start = {}, connect = {}, audio: streamAudio = streamCallerAudio } = {}) {
  const { Client, audio } = CARRIERS[carrier];
  const client = await Client.connect(url, connect);
  Object.assign(client, audio);
  const playback = new Playback(client);
  client.connected();
  client.start(start);
  const stopAudio = streamAudio(client);
  return { client, playback, stopAudio };
}

/**
 * A Twilio call end to end: signed webhook → TwiML → signed media stream with the call's token
 * → the worker's STT socket at fake Deepgram `dg`; with `greeting` (a mark name such as
 * 't0-s0'), until that mark of the greeting has been played. Resolves to
 * {xml, stream, token, callId, client, playback, stopAudio, stt}.
 */
export async function startTwilioCall({ worker, dg }, { to, from, params, greeting, greetingTimeout = 15_000 } = {}) {
  const markup = await twilioIncoming(worker, to, { from, params });
  assert.ok(markup.stream && markup.token && markup.callId, markup.xml);
  const sttBefore = dg.connections.length;
  const media = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: markup.callId } });
  const stt = await dg.waitForConnection(sttBefore, 10_000);
  const call = { ...markup, ...media, stt };
  if (greeting) await eventually(() => call.playback.echoed(greeting), { timeout: greetingTimeout, interval: 20, message: `greeting (${greeting}) played` });
  return call;
}
