// `npm run demo`: a complete simulated inbound call, with no accounts.
//
// A worker started by `npm run dev` talks to the real Deepgram, OpenAI and ElevenLabs (its
// settings are read when it starts), so the demo runs its own worker beside it: `wrangler dev`
// on DEMO_PORT (default 8788) with the same local data as `npm run dev` (.wrangler/state) and
// the same `.dev.vars` (so the same login key), but with the speech-to-text, LLM and
// text-to-speech settings pointed at local stand-ins that speak the providers' real protocols
// (the test fakes in tests/fakes/). The demo then plays the carrier: a signed Twilio voice
// webhook, then a Twilio Media Streams socket whose caller talks from a script. It creates a
// demo agent and number through the API if they are missing, prints the live view's URL, and
// walks the call through a greeting, two turns, a barge-in and a goodbye, with pauses so it can
// be watched. It exits 0 once the call's transcript and summary are stored, non-zero with the
// reason otherwise. The call stays in the local data: `npm run dev`'s dashboard shows it.
//
//   node scripts/demo.mjs [--port 8788] [--ring-ms 10000] [--pause-ms 2500] [--word-ms 250]
//                         [--dev-vars .dev.vars] [--state .wrangler/state]
//
// `runDemo` is the call itself, for any worker already pointed at the stand-ins
// (tests/demo.test.mjs runs it against the test harness's worker).

import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startWorker, eventually, within, sleep } from '../tests/harness.mjs';
import { startProviderFakes, twilioIncoming, openMediaStream } from '../tests/live-setup.mjs';
import { answers, devOrigin, readDevVars, DEV_STATE, DEV_VARS } from './local-dev.mjs';

/** The demo agent (found again by its name, and reset to these settings on every run). */
export const DEMO_AGENT = Object.freeze({
  name: 'Demo receptionist (npm run demo)',
  system_prompt: 'You are the receptionist of the Demo Bistro. Take table bookings and answer questions briefly.',
  first_message: 'Hello! Thanks for calling the Demo Bistro. How can I help?',
  voice: { provider: 'elevenlabs', voice_id: '21m00Tcm4TlvDq8ikWAM' },
});

/** The demo's number (555-01xx numbers are fictional) and the caller's. */
export const DEMO_NUMBER = '+15550100199';
export const DEMO_CALLER = '+15550100123';

/**
 * What is said. Turn 3 is cut: the caller speaks while the second sentence plays, so only the
 * first one is kept as heard; the goodbye then ends the call with the `end_call` tool.
 */
export const DEMO_SCRIPT = Object.freeze({
  turns: [
    { caller: 'Hi, I would like to book a table for two tonight.', agent: 'Of course. I have a table for two at seven thirty tonight. Shall I book it?' },
    { caller: 'Yes please, under the name Sam.', agent: 'Done. A table for two at seven thirty tonight, under the name Sam.' },
  ],
  bargeIn: {
    caller: 'Do you have vegetarian dishes?',
    agent: [
      'Yes, we do.',
      'Tonight there is a mushroom risotto with parmesan and thyme, a grilled vegetable lasagne, and a green curry with tofu and jasmine rice, and every dessert on the menu is vegetarian too.',
    ],
    interruption: 'Sorry, I have to run now.',
  },
  goodbye: 'No problem, Sam. See you tonight, goodbye!',
  summary: 'Sam booked a table for two at seven thirty tonight and asked about vegetarian dishes before hanging up.',
});

/** An authenticated JSON API call against `url`; resolves to the parsed body, throws on an unexpected status. */
function apiClient(url, key) {
  return async (method, path, body, expected = [200, 201]) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!expected.includes(res.status)) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/** Every item of a paged list (`data`, `next_cursor`). */
async function listAll(api, path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** The demo agent and number, created through the API when missing; resolves to {agent, number}. */
export async function ensureDemoAgent(api) {
  const existing = (await listAll(api, '/api/v1/agents')).find((a) => a.name === DEMO_AGENT.name);
  const agent = existing
    ? await api('PATCH', `/api/v1/agents/${existing.id}`, { ...DEMO_AGENT })
    : await api('POST', '/api/v1/agents', { ...DEMO_AGENT });
  const found = (await listAll(api, '/api/v1/numbers')).find((n) => n.number === DEMO_NUMBER);
  const number = found
    ? await api('PATCH', `/api/v1/numbers/${found.id}`, { agent_id: agent.id, ring_owner_first: false })
    : await api('POST', '/api/v1/numbers', { number: DEMO_NUMBER, agent_id: agent.id });
  return { agent, number };
}

/**
 * Runs the demo call against the worker at `url` (API key `key`, Twilio auth token
 * `twilioAuthToken`) whose providers are the stand-ins `fakes` (startProviderFakes). `ringMs` is
 * the wait between the call ringing and its stream (time to open the live view), `pauseMs` the
 * wait between steps, `wordMs` the pace of the caller's interim transcripts; `detailOrigin` is
 * where the printed call-detail URL points (default `url`). Resolves to {callId, liveUrl,
 * detailUrl, call, transcript} once the transcript and summary are stored; rejects with the
 * reason otherwise.
 */
export async function runDemo({ url, key, twilioAuthToken, fakes, ringMs = 10_000, pauseMs = 2500, wordMs = 250, detailOrigin = url, log = console.log, timeoutMs = 30_000 }) {
  const { dg, openai } = fakes;
  const api = apiClient(url, key);
  const step = (text) => log(`[demo] ${text}`);
  const { agent } = await ensureDemoAgent(api);
  step(`agent "${agent.name}" (${agent.id}) answers ${DEMO_NUMBER}`);

  // The carrier: Twilio's signed voice webhook for an incoming call to the demo number.
  const markup = await twilioIncoming({ url }, DEMO_NUMBER, { from: DEMO_CALLER, authToken: twilioAuthToken });
  if (!markup.callId || !markup.token) throw new Error(`the voice webhook did not connect a stream: ${markup.xml}`);
  const { callId } = markup;
  const liveUrl = `${url}/#/calls/${callId}/live`;
  const detailUrl = `${detailOrigin}/#/calls/${callId}`;
  step(`call ${callId} is ringing. Watch it live: ${liveUrl}`);
  if (ringMs > 0) {
    step(`(log in with the ADMIN_API_KEY of .dev.vars; the caller connects in ${Math.round(ringMs / 1000)} s)`);
    await sleep(ringMs);
  }

  const turnStored = (id) => eventually(async () => (await api('GET', `/api/v1/calls/${callId}/session`)).turns.some((t) => t.id === id), { timeout: timeoutMs, interval: 250, message: `turn ${id} of the call stored` });
  const sttBefore = dg.connections.length;
  const media = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: callId }, connect: { authToken: twilioAuthToken } });
  const { client, playback, stopAudio } = media;
  try {
    const first = await dg.waitForConnection(sttBefore, timeoutMs);
    // The worker reopens its STT stream when one closes under the call (workerd may close it
    // with 1005 after a fetch), so the caller speaks on the call's newest open stream.
    const stt = () => dg.connections.slice(sttBefore).findLast((c) => !c.closed) ?? first;
    /** The caller says `text`: interim transcripts word by word, then the final one. */
    const say = async (text) => {
      step(`caller: ${text}`);
      const words = text.split(' ');
      for (let i = 1; i < words.length; i++) {
        dg.say(stt(), { transcript: words.slice(0, i).join(' '), is_final: false });
        if (wordMs > 0) await sleep(wordMs);
      }
      await dg.say(stt(), { transcript: text, is_final: true, speech_final: true });
    };
    /** The agent's next reply (the stand-in LLM's answer to the next streamed chat request). */
    const reply = (text, extra = {}) => openai.reply({ match: (req) => req.parsed?.stream === true, text, ...extra });
    // The summary the worker asks for when the call ends (a non-streamed chat request).
    openai.reply({ match: (req) => req.parsed?.stream === false, text: DEMO_SCRIPT.summary });

    // Each agent line is printed once the caller heard it (its turn is stored).
    await turnStored(0);
    step(`agent: ${DEMO_AGENT.first_message}`);
    let turn = 0;
    for (const { caller, agent: answer } of DEMO_SCRIPT.turns) {
      await sleep(pauseMs);
      reply(answer);
      await say(caller);
      await turnStored(++turn);
      step(`agent: ${answer}`);
    }

    await sleep(pauseMs);
    const { bargeIn } = DEMO_SCRIPT;
    reply(bargeIn.agent.join(' '));
    await say(bargeIn.caller);
    turn += 1;
    // Once the first sentence was heard and the whole second one is queued at the carrier, the
    // caller talks over it.
    await eventually(() => playback.echoed(`t${turn}-s0`) && playback.marks().includes(`t${turn}-s1`), { timeout: timeoutMs, interval: 20, message: 'the first sentence heard, the second playing' });
    await sleep(Math.min(pauseMs, 800));
    step(`agent: ${bargeIn.agent[0]} ${bargeIn.agent[1].split(' ').slice(0, 5).join(' ')}…`);
    step('caller talks over the agent (barge-in):');
    reply(DEMO_SCRIPT.goodbye, { toolCalls: [{ name: 'end_call', arguments: {} }] });
    await say(bargeIn.interruption);
    await eventually(() => playback.log.some((e) => e.kind === 'clear'), { timeout: timeoutMs, interval: 20, message: 'the agent stopped (clear)' });
    step(`(the agent stopped; only "${bargeIn.agent[0]}" counts as heard)`);
    const closed = await within(client.closed, timeoutMs, 'the agent hanging up');
    if (closed.code !== 1000) throw new Error(`the media stream closed with ${closed.code} ${closed.reason}`);
    step(`agent: ${DEMO_SCRIPT.goodbye} (and hangs up)`);
  } finally {
    stopAudio();
    if (client.socket.readyState === 1) client.socket.close(1000);
  }

  step('call ended; waiting for its transcript and summary');
  const call = await eventually(async () => {
    const c = await api('GET', `/api/v1/calls/${callId}`);
    return c.status === 'completed' && c.summary && c;
  }, { timeout: timeoutMs, interval: 250, message: `call ${callId} completed with a summary` });
  const transcript = await api('GET', `/api/v1/calls/${callId}/transcript`);
  step(`summary: ${call.summary}`);
  step(`transcript, summary and latency: ${detailUrl}`);
  return { callId, liveUrl, detailUrl, call, transcript };
}

/** The command: stand-ins, the demo's worker on the local data, the call; exit 0 or 1. */
async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.DEMO_PORT ?? '8788' },
      'ring-ms': { type: 'string', default: '10000' },
      'pause-ms': { type: 'string', default: '2500' },
      'word-ms': { type: 'string', default: '250' },
      'dev-vars': { type: 'string', default: DEV_VARS },
      state: { type: 'string', default: DEV_STATE },
    },
  });
  const port = Number(values.port);
  const devVars = readDevVars(values['dev-vars']);
  if (!devVars.ADMIN_API_KEY) throw new Error(`no ADMIN_API_KEY in ${values['dev-vars']} (npm run demo creates one)`);
  const dev = devOrigin();
  const devRunning = await answers(dev);
  if (await answers(`http://127.0.0.1:${port}`)) {
    throw new Error(`something already answers on port ${port}; choose another with --port or DEMO_PORT`);
  }
  const fakes = await startProviderFakes();
  let worker;
  // The worker runs in its own process group (the harness detaches it): Ctrl-C must stop it too.
  let stopping = false;
  const interrupt = async () => {
    if (stopping) return;
    stopping = true;
    console.error('[demo] interrupted; stopping the demo worker');
    await worker?.stop();
    await fakes.close();
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    // The stand-in carrier signs with the developer's Twilio token when there is one.
    const twilioAuthToken = devVars.TWILIO_AUTH_TOKEN || randomBytes(16).toString('hex');
    console.log(`[demo] starting stand-ins for speech-to-text, the LLM and text-to-speech, and a worker on port ${port} pointed at them (local data: ${values.state})`);
    worker = await startWorker({
      base: devVars,
      vars: { ...fakes.vars, TWILIO_AUTH_TOKEN: twilioAuthToken, PUBLIC_BASE_URL: `http://127.0.0.1:${port}` },
      state: values.state,
      port,
    });
    await runDemo({
      url: worker.url,
      key: devVars.ADMIN_API_KEY,
      twilioAuthToken,
      fakes,
      ringMs: Number(values['ring-ms']),
      pauseMs: Number(values['pause-ms']),
      wordMs: Number(values['word-ms']),
      // The demo's worker stops with it; `npm run dev` serves the same local data.
      detailOrigin: dev,
    });
    if (!devRunning) console.log('[demo] `npm run dev` is not running: start it to open the call detail (the call is in its local data)');
  } catch (e) {
    if (worker) console.error(worker.output.slice(-20).join('\n'));
    throw e;
  } finally {
    await worker?.stop();
    await fakes.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(`[demo] failed: ${e.message}`);
      process.exit(1);
    },
  );
}
