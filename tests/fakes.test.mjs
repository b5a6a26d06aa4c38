// Self-tests of the fake providers (tests/fakes/*), driven by real HTTP and WebSocket clients,
// and of the signing helpers against the published vectors (docs/protocols.md §1). No worker needed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'undici';
import { WebSocket } from 'ws';
import { startFakeHttp } from './fakes/http.mjs';
import { startFakeWs } from './fakes/ws.mjs';
import { mulawTone, mulawToLinear, linearToMulaw, mulawEnergy } from './fakes/audio.mjs';
import { startFakeDeepgram } from './fakes/deepgram.mjs';
import { startFakeOpenAI, parseSse, DEFAULT_REPLY_TEXT } from './fakes/openai.mjs';
import { startFakeElevenLabs } from './fakes/elevenlabs.mjs';
import { startFakeTwilio, twilioSignature, sendStatusCallback } from './fakes/twilio.mjs';
import {
  startFakeResend, icsAttachment, icsProperties, signStandardWebhook, verifyStandardWebhook, sendResendWebhook, resendEvent,
} from './fakes/resend.mjs';
import { startFakeBland, blandSignature, parseBlandStartTime } from './fakes/bland.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import {
  TelnyxMediaClient, ExotelMediaClient, telnyxKeyPair, signTelnyx, retellSignature,
} from './fakes/media-clients.mjs';

const closers = [];
const track = (fake) => (closers.push(() => fake.close()), fake);
after(async () => {
  for (const close of closers) await close();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (fn, timeout = 3000) => {
  const deadline = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
  return fn();
};

// ---- audio ---------------------------------------------------------------------------------

test('μ-law codec: silence is 0xFF, round trip is close, tones are not silent', () => {
  assert.equal(linearToMulaw(0), 0xff);
  assert.equal(mulawToLinear(0xff), 0);
  for (const v of [-30000, -1000, -1, 1, 100, 1000, 30000]) assert.ok(Math.abs(mulawToLinear(linearToMulaw(v)) - v) <= Math.abs(v) / 16 + 8, `${v}`);
  assert.ok(mulawEnergy(mulawTone(160)) > 1000);
  assert.equal(mulawEnergy(Buffer.alloc(160, 0xff)), 0);
});

// ---- OpenAI ------------------------------------------------------------------------------

const chatBody = (extra = {}) => ({
  model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
  messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], ...extra,
});
// Requests to a fake go as the worker's do, on kept-alive connections: a response the fake drops
// is then a broken chunked body, as the worker sees it, not a close-delimited one that just ends
// (the harness's own dispatcher opens a fresh connection per request).
const keepAlive = new Agent();
const post = (url, body, headers = { authorization: 'Bearer sk-test' }, init = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), dispatcher: keepAlive, ...init });

test('openai: streamed text is OpenAI SSE: role first, content deltas, stop, usage chunk, [DONE]', async () => {
  const ai = track(await startFakeOpenAI({ apiKey: 'sk-test' }));
  ai.reply({ text: 'Hello there. How can I help?', chunkDelayMs: 2, fragmented: true });
  const res = await post(`${ai.url}/chat/completions`, chatBody());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const raw = await res.text();
  assert.ok(raw.endsWith('data: [DONE]\n\n'));
  const events = parseSse(raw);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'gpt-4o-mini' && c.id === chunks[0].id));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
  const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
  assert.equal(content, 'Hello there. How can I help?');
  assert.ok(chunks.filter((c) => c.choices[0]?.delta.content).length >= 6, 'many small deltas');
  const finish = chunks.at(-2);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.total_tokens, chunks.at(-1).usage.prompt_tokens + chunks.at(-1).usage.completion_tokens);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null && c.choices[0].logprobs === null));
  const req = ai.chatRequests[0];
  assert.equal(req.parsed.messages[1].content, 'hi');
  assert.equal(req.aborted, false);
  assert.equal(req.finished, true);
});

test('openai: tool calls stream in fragments by index and reassemble', async () => {
  const ai = track(await startFakeOpenAI());
  ai.reply({ toolCalls: [{ name: 'end_call', arguments: { reason: 'done' } }, { name: 'book', arguments: '{"party":2}' }] });
  const res = await post(`${ai.url}/chat/completions`, chatBody({ stream_options: undefined, tools: [{ type: 'function', function: { name: 'end_call' } }] }));
  const chunks = parseSse(await res.text()).slice(0, -1);
  assert.ok(chunks.every((c) => !('usage' in c)), 'no usage without include_usage');
  const first = chunks[0].choices[0].delta;
  assert.equal(first.role, 'assistant');
  assert.equal(first.content, null);
  const calls = [];
  for (const c of chunks) {
    for (const tc of c.choices[0].delta.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', name: '', arguments: '' };
      if (tc.id) {
        assert.equal(tc.type, 'function');
        calls[tc.index].id = tc.id;
        calls[tc.index].name = tc.function.name;
      } else assert.deepEqual(Object.keys(tc).sort(), ['function', 'index']);
      calls[tc.index].arguments += tc.function.arguments;
    }
  }
  assert.equal(calls.length, 2);
  assert.equal(calls[0].name, 'end_call');
  assert.deepEqual(JSON.parse(calls[0].arguments), { reason: 'done' });
  assert.deepEqual(JSON.parse(calls[1].arguments), { party: 2 });
  assert.match(calls[0].id, /^call_/);
  assert.ok(chunks.filter((c) => c.choices[0].delta.tool_calls?.[0]?.index === 0).length > 2, 'arguments come in pieces');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  assert.equal(ai.chatRequests[0].parsed.tools[0].function.name, 'end_call');
});

test('openai: a stalled stream sends the role delta, then hangs until the client aborts, which is recorded', async () => {
  const ai = track(await startFakeOpenAI());
  ai.reply({ stall: true });
  const controller = new AbortController();
  const res = await post(`${ai.url}/chat/completions`, chatBody(), undefined, { signal: controller.signal });
  const reader = res.body.getReader();
  const { value } = await reader.read();
  const first = parseSse(Buffer.from(value).toString());
  assert.equal(first[0].choices[0].delta.role, 'assistant');
  await sleep(50);
  assert.equal(ai.chatRequests[0].aborted, false);
  controller.abort();
  await ai.waitFor(() => ai.chatRequests[0].aborted, 2000);
  assert.equal(ai.chatRequests[0].finished, false);

  ai.reply({ text: 'Partial answer', drop: true });
  const dropped = await post(`${ai.url}/chat/completions`, chatBody());
  await assert.rejects(dropped.text());
  assert.equal(ai.chatRequests[1].serverClosed, true);
  assert.equal(ai.chatRequests[1].aborted, false);
});

test('openai: scripted errors, defaults, non-streaming completions and history validation', async () => {
  const ai = track(await startFakeOpenAI({ apiKey: 'sk-test' }));
  ai.reply({ status: 500 }).reply({ status: 429 });
  const e500 = await post(`${ai.url}/chat/completions`, chatBody());
  assert.equal(e500.status, 500);
  assert.equal((await e500.json()).error.type, 'server_error');
  const e429 = await post(`${ai.url}/chat/completions`, chatBody());
  assert.equal(e429.status, 429);
  assert.equal((await e429.json()).error.code, 'rate_limit_exceeded');
  const unauth = await post(`${ai.url}/chat/completions`, chatBody(), { authorization: 'Bearer nope' });
  assert.equal(unauth.status, 401);
  await unauth.arrayBuffer();

  const summary = await post(`${ai.url}/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'summarize' }] });
  const completion = await summary.json();
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.content, DEFAULT_REPLY_TEXT);
  assert.equal(completion.choices[0].finish_reason, 'stop');

  const orphan = await post(`${ai.url}/chat/completions`, chatBody({
    messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'user', content: 'y' }],
  }));
  assert.equal(orphan.status, 400);
  assert.match((await orphan.json()).error.message, /call_1/);
});

test('openai: structured outputs: a json_schema request gets its answer as the message JSON text; strict schemas are checked', async () => {
  const ai = track(await startFakeOpenAI({ apiKey: 'sk-test' }));
  const schema = {
    type: 'object', additionalProperties: false, required: ['intent', 'size', 'ok'],
    properties: { intent: { type: 'string', enum: ['booking', 'question'] }, size: { type: ['number', 'null'] }, ok: { type: 'boolean' } },
  };
  const body = (s = schema, strict = true) => ({
    model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Caller: hi' }],
    response_format: { type: 'json_schema', json_schema: { name: 'call_analysis', strict, schema: s } },
  });
  const content = async (res) => {
    assert.equal(res.status, 200);
    const completion = await res.json();
    assert.equal(completion.choices[0].finish_reason, 'stop');
    return completion.choices[0].message.content;
  };
  // Nothing scripted: an answer that fits the schema, as strict mode guarantees.
  assert.deepEqual(JSON.parse(await content(await post(`${ai.url}/chat/completions`, body()))), { intent: 'booking', size: 0, ok: false });
  // Scripted per test: a valid answer, an invalid one (sent as given), a failure then an answer.
  ai.reply({ json: { intent: 'question', size: null, ok: true } }).reply({ json: { intent: 'refund' } }).reply({ status: 500 }).reply({ json: { intent: 'booking', size: 2, ok: true } });
  assert.equal(await content(await post(`${ai.url}/chat/completions`, body())), '{"intent":"question","size":null,"ok":true}');
  assert.equal(await content(await post(`${ai.url}/chat/completions`, body())), '{"intent":"refund"}');
  const failed = await post(`${ai.url}/chat/completions`, body());
  assert.equal(failed.status, 500);
  await failed.arrayBuffer();
  assert.deepEqual(JSON.parse(await content(await post(`${ai.url}/chat/completions`, body()))), { intent: 'booking', size: 2, ok: true });
  // The API's 400s for a strict schema it cannot enforce.
  for (const [bad, pattern] of [
    [{ ...schema, additionalProperties: true }, /additionalProperties/],
    [{ ...schema, required: ['intent'] }, /Missing 'size'/],
  ]) {
    const res = await post(`${ai.url}/chat/completions`, body(bad));
    assert.equal(res.status, 400);
    const error = (await res.json()).error;
    assert.equal(error.param, 'response_format');
    assert.match(error.message, pattern);
  }
  // Not strict: not checked.
  assert.ok(await content(await post(`${ai.url}/chat/completions`, body({ ...schema, required: [] }, false))));
});

test('openai: /audio/speech streams 24 kHz PCM16, 100 ms per word, and records aborts', async () => {
  const ai = track(await startFakeOpenAI());
  const res = await post(`${ai.url}/audio/speech`, { model: 'gpt-4o-mini-tts', input: 'Your table is booked.', voice: 'alloy', response_format: 'pcm' });
  assert.equal(res.status, 200);
  assert.equal((await res.arrayBuffer()).byteLength, 4 * 4800);
  const mp3 = await post(`${ai.url}/audio/speech`, { model: 'tts-1', input: 'x', voice: 'alloy' });
  assert.equal(mp3.status, 400);
  await mp3.arrayBuffer();
  ai.speechReply({ stall: true });
  const controller = new AbortController();
  const slow = await post(`${ai.url}/audio/speech`, { model: 'tts-1', input: 'a b c d', voice: 'alloy', response_format: 'pcm' }, undefined, { signal: controller.signal });
  await slow.body.getReader().read();
  controller.abort();
  await ai.waitFor(() => ai.speechRequests.at(-1).aborted, 2000);
});

// ---- Deepgram ----------------------------------------------------------------------------

const LISTEN = '/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true';
async function openDeepgram(url, headers = { authorization: 'Token dg-key' }, protocols = []) {
  const socket = new WebSocket(url, protocols, { headers });
  const received = [];
  socket.on('message', (d, isBinary) => received.push(isBinary ? d : JSON.parse(d.toString())));
  const closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
    });
    socket.once('error', reject);
  });
  return { socket, received, closed };
}

test('deepgram: records the handshake; scripted Results arrive only after N audio bytes', async () => {
  const dg = track(await startFakeDeepgram({ apiKey: 'dg-key' }));
  dg.script([
    { afterAudioBytes: 8000, results: [{ transcript: 'hello', is_final: false }, { transcript: 'Hello there.', is_final: true, speech_final: true }, { type: 'UtteranceEnd' }] },
    { afterAudioBytes: 1600, results: [{ transcript: 'Second.', is_final: true }] },
  ]);
  const c = await openDeepgram(`${dg.url}${LISTEN}`);
  const conn = await dg.waitForConnection(0);
  assert.equal(conn.apiKey, 'dg-key');
  assert.equal(conn.query.encoding, 'mulaw');
  assert.equal(conn.query.utterance_end_ms, '1000');
  for (let i = 0; i < 49; i++) c.socket.send(Buffer.alloc(160, 0xff));
  await until(() => conn.audioBytes === 49 * 160);
  await sleep(20);
  assert.equal(c.received.length, 0, 'nothing before 8000 bytes');
  c.socket.send(Buffer.alloc(160, 0xff));
  await until(() => c.received.length === 3);
  const [interim, final, ue] = c.received;
  assert.equal(interim.type, 'Results');
  assert.equal(interim.is_final, false);
  assert.deepEqual(interim.channel_index, [0, 1]);
  assert.equal(final.channel.alternatives[0].transcript, 'Hello there.');
  assert.equal(final.is_final, true);
  assert.equal(final.speech_final, true);
  assert.equal(final.start, 0);
  assert.equal(final.duration, 1);
  assert.deepEqual(final.channel.alternatives[0].words.map((w) => w.word), ['hello', 'there']);
  assert.equal(final.channel.alternatives[0].words[1].punctuated_word, 'there.');
  assert.equal(final.metadata.request_id, conn.requestId);
  assert.deepEqual(ue, { type: 'UtteranceEnd', channel: [0, 1], last_word_end: 1 });
  for (let i = 0; i < 10; i++) c.socket.send(Buffer.alloc(160, 0xff));
  await until(() => c.received.length === 4);
  assert.equal(c.received[3].start, 1);
  assert.equal(c.received[3].duration, 0.2);

  dg.say(conn, { transcript: 'imperative', is_final: true, speech_final: true });
  dg.utteranceEnd(conn);
  c.socket.send(JSON.stringify({ type: 'KeepAlive' }));
  c.socket.send(JSON.stringify({ type: 'Finalize' }));
  await until(() => c.received.length === 7);
  assert.equal(c.received[4].channel.alternatives[0].transcript, 'imperative');
  assert.equal(c.received[5].type, 'UtteranceEnd');
  assert.equal(c.received[6].from_finalize, true);
  c.socket.send(JSON.stringify({ type: 'CloseStream' }));
  const closed = await c.closed;
  assert.equal(closed.code, 1000);
  const meta = c.received.at(-1);
  assert.equal(meta.type, 'Metadata');
  assert.equal(meta.duration, 1.2);
  assert.deepEqual(conn.controls.map((m) => m.type), ['KeepAlive', 'Finalize', 'CloseStream']);
});

test('deepgram: refuses bad auth and scripted refusals with dg-error; drops connections abruptly', async () => {
  const dg = track(await startFakeDeepgram({ apiKey: 'dg-key', idleTimeoutMs: 300 }));
  await assert.rejects(openDeepgram(`${dg.url}${LISTEN}`, {}), (e) => e.status === 401 && e.headers['dg-error'] && JSON.parse(e.body).err_code === 'INVALID_AUTH');
  dg.refuse(503, 1);
  await assert.rejects(openDeepgram(`${dg.url}${LISTEN}`), (e) => e.status === 503);
  const ok = await openDeepgram(`${dg.url}${LISTEN}`, {}, ['token', 'dg-key']);
  assert.equal(ok.socket.protocol, 'token');
  dg.dropConnection();
  assert.equal((await ok.closed).code, 1006);
  const idle = await openDeepgram(`${dg.url}${LISTEN}`);
  assert.deepEqual(await idle.closed, { code: 1011, reason: 'NET-0001' });
  assert.deepEqual(dg.upgrades.map((u) => u.status), [401, 503, 101, 101]);
});

test('deepgram Flux: /v2/listen sends Connected, then TurnInfo turns (eager → resumed → eager → end) with sequence ids', async () => {
  const dg = track(await startFakeDeepgram({ apiKey: 'dg-key', eagerDelayMs: 20, endOfTurnDelayMs: 60 }));
  await assert.rejects(openDeepgram(`${dg.url}/v2/listen?model=flux-general-en&encoding=mulaw&sample_rate=8000&interim_results=true`), (e) => e.status === 400);
  await assert.rejects(openDeepgram(`${dg.url}/v1/listen?model=flux-general-en&encoding=mulaw`), (e) => e.status === 400);
  const c = await openDeepgram(`${dg.url}/v2/listen?model=flux-general-en&encoding=mulaw&sample_rate=8000&eager_eot_threshold=0.5`);
  const conn = await dg.waitForConnection(0);
  await until(() => c.received.length === 1);
  assert.deepEqual(c.received[0], { type: 'Connected', request_id: conn.requestId, sequence_id: 0 });
  c.socket.send(Buffer.alloc(8000, 0xff));
  await until(() => conn.audioBytes === 8000);
  const { endOfSpeech } = await dg.fluxTurn(conn, { draft: 'Book a table', transcript: 'Book a table for two' });
  assert.ok(performance.now() - endOfSpeech >= 55, 'EndOfTurn after its delay from the last speech');
  await until(() => c.received.length === 8);
  const turns = c.received.slice(1);
  assert.deepEqual(turns.map((m) => [m.event, m.transcript]), [
    ['StartOfTurn', ''], ['Update', 'Book a table'], ['EagerEndOfTurn', 'Book a table'], ['TurnResumed', 'Book a table'],
    ['Update', 'Book a table for two'], ['EagerEndOfTurn', 'Book a table for two'], ['EndOfTurn', 'Book a table for two'],
  ]);
  assert.deepEqual(turns.map((m) => m.sequence_id), [1, 2, 3, 4, 5, 6, 7]);
  const end = turns.find((m) => m.event === 'EndOfTurn');
  assert.equal(end.type, 'TurnInfo');
  assert.equal(end.turn_index, 0);
  assert.equal(end.audio_window_end, 1);
  assert.deepEqual(end.words.map((w) => w.word), ['Book', 'a', 'table', 'for', 'two']);
  assert.ok(end.end_of_turn_confidence > 0.7);
  dg.turnInfo(conn, 'StartOfTurn', '');
  await until(() => c.received.length === 9);
  assert.equal(c.received[8].turn_index, 1, 'the next turn');
  c.socket.send(JSON.stringify({ type: 'CloseStream' }));
  assert.equal((await c.closed).code, 1000);
});

test('deepgram: SpeechStarted on non-silent audio when vad_events=true', async () => {
  const dg = track(await startFakeDeepgram());
  const c = await openDeepgram(`${dg.url}${LISTEN}`);
  c.socket.send(Buffer.alloc(1600, 0xff));
  c.socket.send(mulawTone(160));
  await until(() => c.received.length === 1);
  assert.deepEqual(c.received[0], { type: 'SpeechStarted', channel: [0], timestamp: 0.2 });
  c.socket.close();
});

test('deepgram: Aura /v1/speak returns 800 μ-law bytes per word; WAV header unless container=none', async () => {
  const dg = track(await startFakeDeepgram());
  const speak = (q) => post(`${dg.httpUrl}/v1/speak?${q}`, { text: 'Your appointment is confirmed.' }, { authorization: 'Token k' });
  const raw = Buffer.from(await (await speak('model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000&container=none')).arrayBuffer());
  assert.equal(raw.length, 4 * 800);
  assert.ok(mulawEnergy(raw) > 1000);
  const wav = Buffer.from(await (await speak('model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000')).arrayBuffer());
  assert.equal(wav.subarray(0, 4).toString(), 'RIFF');
  assert.equal(wav.length, 44 + 4 * 800);
  assert.equal((await post(`${dg.httpUrl}/v1/speak`, { text: 'x' }, {})).status, 401);
  assert.equal(dg.speakRequests[0].query.container, 'none');
});

// ---- ElevenLabs --------------------------------------------------------------------------

test('elevenlabs: streams ulaw_8000 at 100 ms per word, checks xi-api-key, fails and slows on command', async () => {
  const el = track(await startFakeElevenLabs({ apiKey: 'xi' }));
  const url = `${el.url}/v1/text-to-speech/voice123/stream?output_format=ulaw_8000`;
  const res = await post(url, { text: 'Your table for two is confirmed.', model_id: 'eleven_flash_v2_5' }, { 'xi-api-key': 'xi' });
  assert.equal(res.status, 200);
  assert.equal((await res.arrayBuffer()).byteLength, 6 * 800);
  assert.equal(el.requests[0].voiceId, 'voice123');
  assert.equal(el.requests[0].outputFormat, 'ulaw_8000');
  assert.equal(el.requests[0].parsed.model_id, 'eleven_flash_v2_5');
  const bad = await post(url, { text: 'x' }, { 'xi-api-key': 'wrong' });
  assert.equal(bad.status, 401);
  assert.equal((await bad.json()).detail.status, 'invalid_api_key');
  el.failNext(1, 503);
  assert.equal((await post(url, { text: 'x' }, { 'xi-api-key': 'xi' })).status, 503);
  el.slow(200);
  const controller = new AbortController();
  const slow = await post(url, { text: 'one two three four five' }, { 'xi-api-key': 'xi' }, { signal: controller.signal });
  await slow.body.getReader().read();
  controller.abort();
  await el.waitFor(() => el.requests.at(-1).aborted, 2000);
});

// ---- Twilio ------------------------------------------------------------------------------

const TW_PARAMS = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675309', Digits: '1234', From: '+14158675309', To: '+18005551212' };

test('twilio: signature matches the published vectors TW1, TW6 and TW15', () => {
  assert.equal(twilioSignature('12345', 'https://mycompany.com/myapp.php?foo=1&bar=2', TW_PARAMS), 'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
  assert.equal(twilioSignature('12345', 'https://mycompany.com:443/myapp.php?foo=1&bar=2', TW_PARAMS), 'kvajT1Ptam85bY51eRf/AJRuM3w=');
  assert.equal(
    twilioSignature('12345', 'https://mycompany.com/myapp.php?foo=1&bar=2', [['Sid', 'CA123'], ['SidAccount', 'AC123'], ['Digits', '5678'], ['Digits', '1234'], ['Digits', '1234']]),
    'IK+Dwps556ElfBT0I3Rgjkr1wJU=',
  );
});

test('twilio: creates calls (Basic auth, repeated params as arrays), modifies them, sends signed callbacks', async () => {
  const sid = `AC${'1'.repeat(32)}`;
  const receiver = track(await startFakeHttp({ fallback: () => ({ status: 204 }) }));
  const tw = track(await startFakeTwilio({ accountSid: sid, authToken: 'tok', via: receiver.url }));
  const form = new URLSearchParams([
    ['To', '+15558675310'], ['From', '+15017122661'], ['Twiml', '<Response/>'], ['StatusCallback', 'https://worker.example.com/voice/twilio/status?call=c1'],
    ['StatusCallbackEvent', 'initiated'], ['StatusCallbackEvent', 'answered'], ['StatusCallbackEvent', 'completed'],
    ['AsyncAmd', 'true'], ['AsyncAmdStatusCallback', 'https://worker.example.com/voice/twilio/amd'],
  ]);
  const auth = { authorization: `Basic ${Buffer.from(`${sid}:tok`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' };
  const res = await fetch(`${tw.url}/2010-04-01/Accounts/${sid}/Calls.json`, { method: 'POST', headers: auth, body: form });
  assert.equal(res.status, 201);
  const call = await res.json();
  assert.match(call.sid, /^CA[0-9a-f]{32}$/);
  assert.equal(call.status, 'queued');
  assert.equal(call.direction, 'outbound-api');
  assert.equal(call.to_formatted, '(555) 867-5310');
  assert.equal(call.uri, `/2010-04-01/Accounts/${sid}/Calls/${call.sid}.json`);
  assert.deepEqual(tw.requests[0].fields.StatusCallbackEvent, ['initiated', 'answered', 'completed']);
  assert.deepEqual(tw.requests[0].auth, { user: sid, password: 'tok' });
  const wrong = await fetch(`${tw.url}/2010-04-01/Accounts/${sid}/Calls.json`, { method: 'POST', headers: { ...auth, authorization: 'Basic eDp5' }, body: form });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).code, 20003);

  assert.equal(await tw.sendStatus(call.sid, 'ringing'), null, 'ringing was not subscribed');
  await tw.sendStatus(call.sid, 'answered');
  await tw.sendAmd(call.sid, 'machine_start');
  const [cb, amd] = receiver.requests;
  assert.equal(cb.path, '/voice/twilio/status');
  assert.equal(cb.form().get('CallStatus'), 'in-progress');
  assert.equal(cb.headers['x-twilio-signature'], twilioSignature('tok', 'https://worker.example.com/voice/twilio/status?call=c1', Object.fromEntries(cb.form())));
  assert.equal(amd.form().get('AnsweredBy'), 'machine_start');

  const mod = await fetch(`${tw.url}/2010-04-01/Accounts/${sid}/Calls/${call.sid}.json`, { method: 'POST', headers: auth, body: 'Status=completed' });
  assert.equal((await mod.json()).status, 'completed');
  assert.deepEqual(tw.modifications[0].params, { Status: 'completed' });

  const direct = await sendStatusCallback(`${receiver.url}/x`, 'tok', { CallSid: 'CA1', CallStatus: 'completed' });
  assert.equal(direct.status, 204);
});

// ---- Resend + Standard Webhooks -------------------------------------------------------------

const B = { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', id: 'msg_p5jXN8AQM9LWM0D4loKWxJek', ts: 1614265330, body: '{"test": 2432232314}', sig: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
const bHeaders = (sig = B.sig, extra = {}) => ({ 'webhook-id': B.id, 'webhook-timestamp': String(B.ts), 'webhook-signature': sig, ...extra });

test('standard webhooks: signer reproduces A1, B1 and the rotation vector', () => {
  assert.deepEqual(signStandardWebhook(B.secret, B.id, B.ts, B.body), { 'svix-id': B.id, 'svix-timestamp': String(B.ts), 'svix-signature': B.sig });
  const a1 = signStandardWebhook('whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD', 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk', 1649367553, '{"email":"test@example.com","username":"test_user"}', { prefix: 'webhook' });
  assert.equal(a1['webhook-signature'], 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=');
  const rotated = signStandardWebhook([B.secret, 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'], B.id, B.ts, B.body, { prefix: 'webhook' });
  assert.equal(rotated['webhook-signature'], `${B.sig} v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44=`);
});

test('standard webhooks: verifier follows set B', () => {
  const v = (secret, headers, body = B.body, now = B.ts) => verifyStandardWebhook(secret, headers, body, 300, now).ok;
  assert.equal(v(B.secret, bHeaders()), true); // B1
  assert.equal(v('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', bHeaders()), true); // B2
  assert.equal(v(B.secret, bHeaders('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=')), false); // B3
  assert.equal(v(B.secret, bHeaders(`v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${B.sig} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=`)), true); // B4
  assert.equal(v(B.secret, bHeaders('v1,')), false); // B5
  assert.equal(v(B.secret, bHeaders('v1,g0hM9')), false); // B6
  assert.equal(v(B.secret, bHeaders(B.sig.replace('v1', 'v2'))), false); // B7
  assert.equal(v(B.secret, bHeaders(), '{"test": 2432232315}'), false); // B8
  assert.equal(v(B.secret, { ...bHeaders(), 'webhook-id': 'msg_wrong' }), false); // B9
  assert.equal(v(B.secret, bHeaders(), B.body, B.ts + 300), true); // B10
  assert.equal(v(B.secret, bHeaders(), B.body, B.ts + 301), false); // B11
  assert.equal(v(B.secret, bHeaders(), B.body, B.ts - 300), true); // B12
  assert.equal(v(B.secret, bHeaders(), B.body, B.ts - 301), false); // B13
  assert.equal(v(B.secret, { 'webhook-id': B.id, 'webhook-signature': B.sig }), false); // B14
  assert.equal(v(B.secret, { ...bHeaders(), 'webhook-timestamp': 'hello' }), false); // B15
  assert.throws(() => v('', bHeaders())); // B16
  assert.throws(() => v('whsec_', bHeaders())); // B17
  assert.equal(v(B.secret, { 'Svix-Id': B.id, 'Svix-Timestamp': String(B.ts), 'Svix-Signature': B.sig }), true); // B18
  assert.equal(v(['whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX', 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'], bHeaders(`${B.sig} v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44=`)), true); // O2
  assert.equal(v('whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX', bHeaders(`${B.sig} v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44=`)), false); // O3
});

test('resend: sends e-mails, replays idempotent requests, 409s on a changed payload, fails on command', async () => {
  const rs = track(await startFakeResend());
  const ics = 'BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nATTENDEE;CN="Doe, Jordan";RSVP=TRUE:mailto:jordan@example.com\r\nDESCRIPTION:a long line that is\r\n  folded\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n';
  const email = {
    from: 'Acme <bookings@acme.example>', to: ['jordan@example.com'], subject: 'Your appointment', text: 'See you',
    attachments: [{ filename: 'invite.ics', content: Buffer.from(ics).toString('base64'), content_type: 'text/calendar; method=REQUEST; charset=UTF-8' }],
  };
  const send = (body, key, auth = 'Bearer re_test') => post(`${rs.url}/emails`, body, { authorization: auth, ...(key ? { 'idempotency-key': key } : {}) });
  const first = await send(email, 'bk_1-confirmation');
  assert.equal(first.status, 200);
  const { id } = await first.json();
  assert.match(id, /^[0-9a-f-]{36}$/);
  const again = await send({ ...email }, 'bk_1-confirmation');
  assert.equal((await again.json()).id, id);
  const changed = await send({ ...email, subject: 'Other' }, 'bk_1-confirmation');
  assert.equal(changed.status, 409);
  assert.deepEqual(Object.keys(await changed.json()).sort(), ['message', 'name', 'statusCode']);
  assert.equal(rs.emails.length, 1);
  assert.equal(rs.emails[0].idempotencyKey, 'bk_1-confirmation');
  const props = icsProperties(icsAttachment(rs.emails[0]));
  assert.equal(props.find((p) => p.name === 'METHOD').value, 'REQUEST');
  const attendee = props.find((p) => p.name === 'ATTENDEE');
  assert.deepEqual(attendee.params, { CN: '"Doe, Jordan"', RSVP: 'TRUE' });
  assert.equal(attendee.value, 'mailto:jordan@example.com');
  assert.equal(props.find((p) => p.name === 'DESCRIPTION').value, 'a long line that is folded');

  assert.equal((await (await send(email, undefined, '')).json()).name, 'missing_api_key');
  assert.equal((await send({ ...email, to: undefined })).status, 422);
  rs.failNext(1, 429);
  const limited = await send(email);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('ratelimit-reset'), '1');
  assert.equal((await limited.json()).name, 'rate_limit_exceeded');
});

test('resend: inbound webhook helper signs like Resend (svix-*)', async () => {
  const receiver = track(await startFakeHttp());
  const event = resendEvent('email.delivered', { emailId: '49a3999c-0ce1-4ea6-ab68-afcd6dc2e794' });
  const { sent } = await sendResendWebhook(`${receiver.url}/webhooks/resend`, B.secret, event);
  const got = receiver.requests[0];
  assert.equal(got.body, sent.body);
  assert.equal(verifyStandardWebhook(B.secret, got.headers, got.body).ok, true);
  assert.equal(got.json().data.email_id, '49a3999c-0ce1-4ea6-ab68-afcd6dc2e794');
});

// ---- Bland -------------------------------------------------------------------------------

test('bland: signature matches BL1; calls validate start_time, stop, and complete with a signed webhook', async () => {
  const bl1 = '{"call_id":"c9d0e3a6-1f2b-4c3d-9e8f-0a1b2c3d4e5f","status":"completed","to":"+15555550123","from":"+15555550100","call_length":1.25,"completed":true}';
  assert.equal(blandSignature('bland_whsec_test_0123456789', bl1), 'a8321a9426842b82271961e53beffb9cd93fa4c8dd63a70484c1d0eb7a6dc97a');
  assert.equal(parseBlandStartTime('2021-01-01 12:00:00 -05:00'), Date.UTC(2021, 0, 1, 17));
  assert.equal(parseBlandStartTime('2021-01-01T12:00:00Z'), null);

  const receiver = track(await startFakeHttp());
  const bland = track(await startFakeBland({ apiKey: 'bk', webhookSecret: 'sec', via: receiver.url }));
  const call = (body) => post(`${bland.url}/v1/calls`, body, { authorization: 'bk' });
  const base = { phone_number: '+15551234567', task: 'Confirm.', webhook: 'https://worker.example.com/webhooks/bland', metadata: { id: 'c1' } };
  const bad = await call({ ...base, start_time: '2025-04-01T15:00:00-05:00' });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).errors[0].field, 'start_time');
  const ok = await call({ ...base, start_time: '2099-04-01 15:00:00 -05:00' });
  const created = await ok.json();
  assert.equal(created.status, 'success');
  assert.match(created.call_id, /^[0-9a-f-]{36}$/);
  assert.equal(bland.calls.get(created.call_id).status, 'scheduled');
  const stop = await post(`${bland.url}/v1/calls/${created.call_id}/stop`, {}, { authorization: 'Bearer bk' });
  assert.equal((await stop.json()).status, 'success');
  assert.equal(bland.calls.get(created.call_id).stopped, true);
  assert.equal((await call(base)).status, 200);
  const second = bland.requests.at(-1).callId;
  await bland.complete(second, { summary: 'Confirmed.' });
  const hook = receiver.requests[0];
  assert.equal(hook.path, '/webhooks/bland');
  assert.equal(hook.headers['x-webhook-signature'], blandSignature('sec', hook.body));
  assert.equal(hook.json().summary, 'Confirmed.');
  assert.deepEqual(hook.json().metadata, { id: 'c1' });
  assert.equal(hook.json().completed, true);
});

// ---- Target ------------------------------------------------------------------------------

test('target: verifies Standard Webhooks signatures and fails, throttles or stalls on command', async () => {
  const target = track(await startFakeTarget({ secret: B.secret }));
  const deliver = (sig = true) => {
    const ts = Math.floor(Date.now() / 1000);
    const headers = sig ? signStandardWebhook(B.secret, 'msg_1', ts, B.body, { prefix: 'webhook' }) : { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': 'v1,bad' };
    return fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: B.body });
  };
  assert.equal((await deliver()).status, 200);
  assert.equal((await deliver(false)).status, 200);
  target.failNext(1, 503);
  assert.equal((await deliver()).status, 503);
  target.respondWith(429, { headers: { 'retry-after': '1' } });
  const throttled = await deliver();
  assert.equal(throttled.status, 429);
  assert.equal(throttled.headers.get('retry-after'), '1');
  target.reset();
  target.slow(1000);
  await assert.rejects(fetch(target.url, { method: 'POST', body: '{}', signal: AbortSignal.timeout(100) }), { name: 'TimeoutError' });
  target.reset();
  assert.deepEqual(target.deliveries.slice(0, 4).map((d) => [d.verified, d.status]), [[true, 200], [false, 200], [true, 503], [true, 429]]);
  assert.equal(target.deliveries[0].id, 'msg_1');
  assert.deepEqual(target.deliveries[0].json, { test: 2432232314 });
});

// ---- Carrier media clients and signers ------------------------------------------------------

test('telnyx and retell signers match vectors TX1, R1 and R15', () => {
  const { privateKey, publicKey } = telnyxKeyPair('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
  assert.equal(publicKey, '11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=');
  const body = '{"data":{"event_type":"call.initiated","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2018-02-02T22:25:27.521992Z","payload":{"call_control_id":"v3:abc","from":"+35319605860","to":"+13129457420"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}';
  assert.deepEqual(signTelnyx(privateKey, 1700000000, body), {
    'telnyx-signature-ed25519': 'mHwIk5qT4UpAVvkSi9EgNJiQsw0fWG0dkt51d3xQMl0NJOJGdT/p5JHq3LUuIs3HGozCilqf/NKnhac29A5LAg==',
    'telnyx-timestamp': '1700000000',
  });
  assert.equal(Buffer.from(telnyxKeyPair().publicKey, 'base64').length, 32);
  assert.equal(retellSignature('test-api-key', '{"event":"call_ended"}', 1700000000000), 'v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e');
  assert.equal(
    retellSignature('key_test_webhook_badge', '{"event":"call_analyzed","call":{"call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","call_status":"ended"}}', 1700000000000),
    'v=1700000000000,d=4af5dda7b9adbea934a6b6d3e5e4433b32de871fcb9c816679033c04f0474b0a',
  );
});

test('telnyx and exotel media clients speak their carriers’ frame shapes', async () => {
  const server = track(await startFakeWs());
  const tx = await TelnyxMediaClient.connect(`${server.url}/media/telnyx/c1`, { authToken: 'tok' });
  tx.connected();
  tx.start({ customer_id: 'c_1' });
  await tx.stream(2);
  tx.stop();
  const ex = await ExotelMediaClient.connect(`${server.url}/media/exotel/c2`, { basic: 'KEY:TOKEN' });
  ex.connected();
  ex.start({ key1: 'v' });
  ex.media();
  ex.stop();
  await until(() => server.connections.length === 2 && server.connections[0].messages.length === 5 && server.connections[1].messages.length === 4);
  const [t, e] = server.connections;
  assert.equal(t.headers['x-telnyx-streaming-auth-token'], 'tok');
  const tf = t.messages.map((m) => JSON.parse(m));
  assert.deepEqual(tf[0], { event: 'connected', version: '1.0.0', connected: { 'x-telnyx-streaming-auth-token': 'tok' } });
  assert.deepEqual(tf[1].start.media_format, { encoding: 'PCMU', sample_rate: 8000, channels: 1 });
  assert.equal(tf[1].sequence_number, '1');
  assert.equal(tf[1].stream_id, tx.streamId);
  assert.deepEqual(tf[3].media, { track: 'inbound', chunk: '2', timestamp: '20', payload: Buffer.alloc(160, 0xff).toString('base64') });
  assert.deepEqual(tf[4].stop, { user_id: tx.userId, call_control_id: tx.callControlId });
  assert.equal(e.headers.authorization, `Basic ${Buffer.from('KEY:TOKEN').toString('base64')}`);
  const ef = e.messages.map((m) => JSON.parse(m));
  assert.deepEqual(ef[0], { event: 'connected' });
  assert.deepEqual(ef[1].start.media_format, { encoding: 'audio/x-raw', sample_rate: '8000', bit_rate: '16' });
  assert.equal(ef[1].stream_sid, ex.streamSid);
  assert.equal(Buffer.from(ef[2].media.payload, 'base64').length, 1600);
  assert.equal(ef[3].stop.reason, 'callended');
  server.connections[0].socket.send(JSON.stringify({ event: 'media', media: { payload: Buffer.from([1, 2, 3]).toString('base64') } }));
  await until(() => tx.received.length === 1);
  assert.deepEqual([...tx.receivedAudio()], [1, 2, 3]);
  tx.close();
  ex.close();
});
