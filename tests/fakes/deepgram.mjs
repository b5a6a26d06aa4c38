// Fake Deepgram (docs/protocols.md §6, §8): live STT over WebSocket at /v1/listen (Nova) and
// /v2/listen (Flux), and Aura TTS at POST /v1/speak, on one port (the worker derives all from
// DEEPGRAM_URL).
//
// Flux: `Connected` on open, then `TurnInfo` frames (StartOfTurn / Update / EagerEndOfTurn /
// TurnResumed / EndOfTurn) with Flux's fields (request_id, sequence_id over every server frame,
// turn_index, audio_window_start/end, transcript, words, end_of_turn_confidence); `CloseStream`
// closes. A /v2/listen query with Nova-only parameters, or a Flux model on /v1/listen, is refused
// with 400 as the real service does.
//
// STT: the fake counts the caller's binary audio and answers from a script keyed on how much
// audio it has heard, in Deepgram's exact JSON shapes (Results / UtteranceEnd / SpeechStarted /
// Metadata). With `vad_events=true` it also emits SpeechStarted when non-silent audio begins.
// TTS: deterministic tone audio, MS_PER_WORD (100 ms) per word of text, streamed in chunks,
// over POST /v1/speak or over the Aura WebSocket at GET /v1/speak (docs/protocols.md "TTS over
// WebSocket"): `Speak` text is buffered, each `Flush` generates it (binary audio, then
// `Flushed`), `Clear` drops everything (then `Cleared`), `Close` finishes and closes.
// Pre-recorded STT: POST /v1/listen with the audio as the body (`Authorization: Token`) answers
// Deepgram's pre-recorded shape (`metadata`, `results.channels[].alternatives[].transcript`, and
// `results.utterances` with `utterances=true`); by default the transcript names the SHA-256 of
// the audio it received, so a test can tell the bytes arrived whole.

import { createHash, randomUUID } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { startStreamingHttp, sleep } from './stream-http.mjs';
import { countWords, mulawEnergy, mulawTone, pcm16Energy, pcm16Tone, MS_PER_WORD } from './audio.mjs';

const MODEL_INFO = { name: 'general-nova-3', version: '2025-01-01.0', arch: 'nova-3' };
const MODEL_UUID = '40bd3654-e622-47c4-a111-63a61b23bd5d';
const BYTES_PER_SAMPLE = { mulaw: 1, alaw: 1, linear16: 2, linear32: 4 };
const round3 = (x) => Math.round(x * 1000) / 1000;
/** The query parameters /v2/listen accepts (Deepgram's listen-flux reference). */
const FLUX_PARAMS = new Set(['model', 'encoding', 'sample_rate', 'eager_eot_threshold', 'eot_threshold', 'eot_timeout_ms', 'keyterm', 'mip_opt_out', 'tag']);
/** Plausible end_of_turn_confidence per Flux event (EndOfTurn above the 0.7 default threshold). */
const EOT_CONFIDENCE = { StartOfTurn: 0.02, Update: 0.2, EagerEndOfTurn: 0.55, TurnResumed: 0.15, EndOfTurn: 0.86 };

/** Deepgram's REST/handshake error body. */
export function deepgramError(status, errCode, errMsg, requestId = randomUUID()) {
  return {
    status,
    headers: { 'content-type': 'application/json', 'dg-request-id': requestId, 'dg-error': errMsg },
    body: { err_code: errCode, err_msg: errMsg, request_id: requestId },
  };
}

/** Extracts the API key from `Authorization: Token|Bearer <key>` or `Sec-WebSocket-Protocol: token, <key>`. */
function deepgramKey(headers) {
  const auth = headers.authorization ?? '';
  const m = /^(Token|Bearer) (.+)$/.exec(auth);
  if (m) return { scheme: m[1], key: m[2] };
  const protocols = (headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
  if (protocols[0] === 'token' && protocols[1]) return { scheme: 'subprotocol', key: protocols[1] };
  return null;
}

/** A 44-byte RIFF/WAVE header (Aura's default `container=wav`). */
function wavHeader(dataBytes, { sampleRate, bitsPerSample, format }) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8);
  h.write('fmt ', 12);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(format, 20); // 1 = PCM, 7 = μ-law
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE((sampleRate * bitsPerSample) / 8, 28);
  h.writeUInt16LE(bitsPerSample / 8, 32);
  h.writeUInt16LE(bitsPerSample, 34);
  h.write('data', 36);
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/**
 * Starts the fake. Options: `apiKey` (if set, only this key is accepted), `idleTimeoutMs` (close
 * 1011 NET-0001 after this long without any frame; default 10 s, null = never), `vad` (auto
 * SpeechStarted on non-silent audio when the client asked for `vad_events=true`; default true),
 * `speakChunkBytes` / `speakChunkDelayMs` (TTS streaming granularity). Latency profile (0 =
 * instant, the default): `finalDelayMs` holds every final Results sent with `say` that long, as
 * the real service takes that long after the end of speech to finalize a transcript. Flux
 * (`fluxTurn`): `eagerDelayMs` and `endOfTurnDelayMs` after the end of speech for
 * EagerEndOfTurn and EndOfTurn (defaults 0 = instant). TTS socket: `speakFirstByteMs` before
 * each flushed text's first audio and `speakRealtime` (audio no faster than it plays) instead
 * of `speakChunkDelayMs` there.
 */
export async function startFakeDeepgram({
  apiKey,
  idleTimeoutMs = 10_000,
  vad = true,
  speakChunkBytes = 1600,
  speakChunkDelayMs = 5,
  speakFirstByteMs = 0,
  speakRealtime = false,
  finalDelayMs = 0,
  eagerDelayMs = 0,
  endOfTurnDelayMs = 0,
} = {}) {
  const connections = [];
  const upgrades = [];
  const sharedScript = [];
  let refusals = []; // {status, count}
  let speakSlowMs = speakChunkDelayMs;
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('token') ? 'token' : false),
  });

  const send = (conn, message) => {
    if (conn.closed || conn.socket.readyState !== conn.socket.OPEN) return false;
    conn.sent.push(message);
    conn.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
    return true;
  };
  const audioSeconds = (conn) => conn.audioBytes / conn.bytesPerSecond;
  const latest = () => [...connections].reverse().find((c) => !c.closed) ?? connections.at(-1);

  function resultsMessage(conn, r) {
    const transcript = r.transcript ?? '';
    const start = r.start ?? conn.cursor;
    const duration = r.duration ?? Math.max(audioSeconds(conn) - start, 0);
    const tokens = transcript.split(/\s+/).filter(Boolean);
    const per = tokens.length ? duration / tokens.length : 0;
    const words =
      r.words ??
      tokens.map((t, i) => ({
        word: t.toLowerCase().replace(/[^\p{L}\p{N}']/gu, ''),
        start: round3(start + i * per),
        end: round3(start + (i + 1) * per),
        confidence: 0.98,
        punctuated_word: t,
      }));
    const isFinal = r.is_final ?? true;
    if (isFinal) {
      conn.cursor = start + duration;
      if (words.length) conn.lastWordEnd = words.at(-1).end;
    }
    return {
      type: 'Results',
      channel_index: [0, 1],
      duration: round3(duration),
      start: round3(start),
      is_final: isFinal,
      speech_final: r.speech_final ?? false,
      from_finalize: r.from_finalize ?? false,
      channel: { alternatives: [{ transcript, confidence: r.confidence ?? (transcript ? 0.98 : 0), words }] },
      metadata: { request_id: conn.requestId, model_info: MODEL_INFO, model_uuid: MODEL_UUID },
    };
  }

  /** A Flux TurnInfo frame for {event, transcript}; advances the turn after EndOfTurn. */
  function turnInfoMessage(conn, { event, transcript = '', end_of_turn_confidence }) {
    if (event === 'StartOfTurn') conn.turnStart = audioSeconds(conn);
    const message = {
      type: 'TurnInfo',
      request_id: conn.requestId,
      sequence_id: conn.sequence++,
      event,
      turn_index: conn.turnIndex,
      audio_window_start: round3(conn.turnStart),
      audio_window_end: round3(audioSeconds(conn)),
      transcript,
      words: transcript.split(/\s+/).filter(Boolean).map((word) => ({ word, confidence: 0.98 })),
      end_of_turn_confidence: end_of_turn_confidence ?? EOT_CONFIDENCE[event] ?? 0.1,
    };
    if (event === 'EndOfTurn') {
      conn.turnIndex += 1;
      conn.turnStart = audioSeconds(conn);
    }
    return message;
  }

  /** Emits one scripted item: a Results spec, or {type: 'UtteranceEnd'|'SpeechStarted'|'TurnInfo'|'Error'|...}, {drop}, {close}. */
  function emit(conn, item) {
    if (item.drop) return fake.dropConnection(conn);
    if (item.close) return conn.socket.close(item.close.code ?? 1000, item.close.reason ?? '');
    switch (item.type) {
      case undefined:
      case 'Results':
        return send(conn, resultsMessage(conn, item));
      case 'UtteranceEnd':
        return send(conn, { type: 'UtteranceEnd', channel: [0, 1], last_word_end: item.last_word_end ?? round3(conn.lastWordEnd) });
      case 'SpeechStarted':
        return send(conn, { type: 'SpeechStarted', channel: [0], timestamp: item.timestamp ?? round3(audioSeconds(conn)) });
      case 'TurnInfo':
        return send(conn, turnInfoMessage(conn, item));
      default:
        return send(conn, item);
    }
  }

  async function runScript(conn) {
    if (conn.scriptBusy) return;
    conn.scriptBusy = true;
    try {
      for (;;) {
        const queue = conn.script.length ? conn.script : sharedScript;
        const step = queue[0];
        if (!step || conn.closed || conn.stepBytes < (step.afterAudioBytes ?? 0)) break;
        queue.shift();
        conn.stepBytes = 0;
        if (step.delayMs) await sleep(step.delayMs);
        for (const item of step.results ?? []) emit(conn, item);
        conn.stepsFired += 1;
      }
    } finally {
      conn.scriptBusy = false;
    }
  }

  function resetIdle(conn) {
    clearTimeout(conn.idleTimer);
    if (idleTimeoutMs == null || conn.closed) return;
    conn.idleTimer = setTimeout(() => {
      conn.idleClosed = true;
      conn.socket.close(1011, 'NET-0001');
    }, idleTimeoutMs);
  }

  function onAudio(conn, data) {
    if (data.length === 0) conn.emptyFrames += 1; // Deepgram warns these cause closures; tests can assert 0.
    conn.audioBytes += data.length;
    conn.audioFrames += 1;
    conn.stepBytes += data.length;
    conn.hash.update(data);
    if (vad && conn.query.vad_events === 'true') {
      const energy = conn.encoding === 'linear16' ? pcm16Energy(data) : conn.encoding === 'mulaw' ? mulawEnergy(data) : 0;
      if (energy > 300) {
        conn.silentBytes = 0;
        if (!conn.inSpeech) {
          conn.inSpeech = true;
          send(conn, { type: 'SpeechStarted', channel: [0], timestamp: round3((conn.audioBytes - data.length) / conn.bytesPerSecond) });
        }
      } else if (conn.inSpeech) {
        conn.silentBytes += data.length;
        if (conn.silentBytes >= conn.bytesPerSecond / 2) conn.inSpeech = false;
      }
    }
    runScript(conn);
  }

  function onControl(conn, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = { type: 'invalid', raw: text };
    }
    conn.controls.push(msg);
    if (msg.type === 'Finalize') {
      send(conn, resultsMessage(conn, { transcript: '', is_final: true, from_finalize: true }));
    } else if (msg.type === 'CloseStream' && conn.flux) {
      conn.socket.close(1000);
    } else if (msg.type === 'CloseStream') {
      if (audioSeconds(conn) > conn.cursor) send(conn, resultsMessage(conn, { transcript: '', is_final: true }));
      send(conn, {
        type: 'Metadata',
        transaction_key: 'deprecated',
        request_id: conn.requestId,
        sha256: conn.hash.copy().digest('hex'),
        created: conn.created,
        duration: round3(audioSeconds(conn)),
        channels: conn.channels,
      });
      conn.socket.close(1000);
    }
  }

  function refuseUpgrade(socket, reply) {
    const body = JSON.stringify(reply.body);
    const lines = [
      `HTTP/1.1 ${reply.status} ${reply.status === 401 ? 'Unauthorized' : 'Error'}`,
      ...Object.entries(reply.headers).map(([k, v]) => `${k}: ${v}`),
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
      '',
      body,
    ];
    socket.end(lines.join('\r\n'));
  }

  function onUpgrade(req, socket, head) {
    const url = new URL(req.url, 'http://fake');
    const attempt = { path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, status: 101 };
    if (url.pathname === '/v1/speak') return onSpeakUpgrade(req, socket, head, url, attempt);
    upgrades.push(attempt);
    http.notify();
    const key = deepgramKey(req.headers);
    let reply = null;
    const model = url.searchParams.get('model') ?? '';
    if (url.pathname !== '/v1/listen' && url.pathname !== '/v2/listen') reply = deepgramError(404, 'NOT_FOUND', 'Not found');
    else if (url.pathname === '/v2/listen' && (!model.startsWith('flux') || [...url.searchParams.keys()].some((k) => !FLUX_PARAMS.has(k)))) {
      reply = deepgramError(400, 'INVALID_QUERY_PARAMETER', 'Unsupported query parameter or model for /v2/listen.');
    } else if (url.pathname === '/v1/listen' && model.startsWith('flux')) {
      reply = deepgramError(400, 'INVALID_QUERY_PARAMETER', 'Flux models require /v2/listen.');
    } else if (refusals.length) {
      const r = refusals[0];
      if (--r.count <= 0) refusals.shift();
      reply = deepgramError(r.status, r.status === 401 ? 'INVALID_AUTH' : 'SERVICE_UNAVAILABLE', r.status === 401 ? 'Invalid credentials.' : 'Service unavailable.');
    } else if (!key || (apiKey !== undefined && key.key !== apiKey)) {
      reply = deepgramError(401, 'INVALID_AUTH', 'Invalid credentials.');
    }
    if (reply) {
      attempt.status = reply.status;
      refuseUpgrade(socket, reply);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const query = attempt.query;
      const encoding = query.encoding ?? 'linear16';
      const sampleRate = Number(query.sample_rate ?? 8000);
      const channels = Number(query.channels ?? 1);
      const conn = {
        id: connections.length,
        socket: ws,
        path: url.pathname,
        query,
        headers: req.headers,
        apiKey: key.key,
        authScheme: key.scheme,
        encoding,
        sampleRate,
        channels,
        bytesPerSecond: sampleRate * channels * (BYTES_PER_SAMPLE[encoding] ?? 1),
        requestId: randomUUID(),
        created: new Date().toISOString(),
        hash: createHash('sha256'),
        audioBytes: 0,
        audioFrames: 0,
        emptyFrames: 0,
        stepBytes: 0,
        stepsFired: 0,
        cursor: 0,
        lastWordEnd: 0,
        inSpeech: false,
        silentBytes: 0,
        controls: [],
        sent: [],
        script: [],
        closed: false,
        closeCode: null,
        closeReason: null,
        flux: url.pathname === '/v2/listen',
        sequence: 0,
        turnIndex: 0,
        turnStart: 0,
      };
      connections.push(conn);
      if (conn.flux) send(conn, { type: 'Connected', request_id: conn.requestId, sequence_id: conn.sequence++ });
      ws.on('message', (data, isBinary) => {
        resetIdle(conn);
        if (isBinary) onAudio(conn, Buffer.from(data));
        else onControl(conn, data.toString());
        http.notify();
      });
      ws.on('close', (code, reason) => {
        conn.closed = true;
        conn.closeCode = code;
        conn.closeReason = reason.toString();
        clearTimeout(conn.idleTimer);
        http.notify();
      });
      ws.on('error', () => {});
      resetIdle(conn);
      http.notify();
      runScript(conn);
    });
  }

  // Aura over WebSocket: every socket and every message it received are recorded.
  const speakSockets = [];
  const speakUpgrades = [];
  let speakRefusals = []; // {status, count}
  const speakWss = new WebSocketServer({ noServer: true });

  function onSpeakUpgrade(req, socket, head, url, attempt) {
    speakUpgrades.push(attempt);
    http.notify();
    const key = deepgramKey(req.headers);
    const q = attempt.query;
    const encoding = q.encoding ?? 'linear16';
    const sampleRate = Number(q.sample_rate ?? (encoding === 'linear16' ? 24000 : 8000));
    let reply = null;
    if (speakRefusals.length) {
      const r = speakRefusals[0];
      if (--r.count <= 0) speakRefusals.shift();
      reply = deepgramError(r.status, r.status === 401 ? 'INVALID_AUTH' : 'SERVICE_UNAVAILABLE', r.status === 401 ? 'Invalid credentials.' : 'Service unavailable.');
    } else if (!key || (apiKey !== undefined && key.key !== apiKey)) {
      reply = deepgramError(401, 'INVALID_AUTH', 'Invalid credentials.');
    } else if (encoding !== 'mulaw' && encoding !== 'linear16') {
      reply = deepgramError(400, 'UNSUPPORTED_BY_FAKE', `the fake serves only mulaw and linear16, not ${encoding}`);
    } else if (q.container !== undefined && q.container !== 'none') {
      reply = deepgramError(400, 'INVALID_QUERY_PARAMETER', 'The streaming socket sends raw audio: container is not supported.');
    }
    if (reply) {
      attempt.status = reply.status;
      refuseUpgrade(socket, reply);
      return;
    }
    speakWss.handleUpgrade(req, socket, head, (ws) => {
      const conn = {
        id: speakSockets.length,
        socket: ws,
        query: q,
        headers: req.headers,
        model: q.model ?? 'aura-asteria-en',
        encoding,
        sampleRate,
        requestId: randomUUID(),
        /** Every JSON message received, with `hrAt` (performance.now()). */
        messages: [],
        /** JSON messages sent, and the audio bytes sent per flush sequence id. */
        sent: [],
        audio: [],
        buffer: '',
        jobs: [],
        sequence: 0,
        generation: 0,
        busy: false,
        closed: false,
        closeCode: null,
      };
      speakSockets.push(conn);
      ws.on('message', (data, isBinary) => {
        let msg;
        try {
          msg = JSON.parse(data.toString());
        } catch {
          msg = { type: 'invalid', raw: data.toString() };
        }
        if (isBinary) msg = { type: 'binary' };
        msg.hrAt = performance.now();
        conn.messages.push(msg);
        onSpeakMessage(conn, msg);
        http.notify();
      });
      ws.on('close', (code) => {
        conn.closed = true;
        conn.closeCode = code;
        conn.generation += 1;
        http.notify();
      });
      ws.on('error', () => {});
      http.notify();
    });
  }

  const sendSpeak = (conn, message) => {
    if (conn.socket.readyState !== conn.socket.OPEN) return false;
    if (Buffer.isBuffer(message)) conn.socket.send(message, { binary: true });
    else {
      conn.sent.push(message);
      conn.socket.send(JSON.stringify(message));
    }
    return true;
  };

  function onSpeakMessage(conn, msg) {
    switch (msg.type) {
      case 'Speak':
        if (typeof msg.text !== 'string') {
          sendSpeak(conn, { type: 'Warning', description: 'Speak needs text.', code: 'INVALID_INPUT' });
          return;
        }
        if (!conn.metadataSent) {
          conn.metadataSent = true;
          sendSpeak(conn, { type: 'Metadata', request_id: conn.requestId, model_name: conn.model, model_version: '2025-01-01.0', model_uuid: MODEL_UUID });
        }
        conn.buffer += msg.text;
        return;
      case 'Flush':
        conn.jobs.push({ text: conn.buffer, sequence: conn.sequence++ });
        conn.buffer = '';
        runSpeak(conn);
        return;
      case 'Clear':
        // Everything not yet sent is dropped; what went out before `Cleared` is the client's to drop.
        conn.generation += 1;
        conn.jobs = [];
        conn.buffer = '';
        sendSpeak(conn, { type: 'Cleared', sequence_id: conn.sequence });
        return;
      case 'Close':
        conn.closing = true;
        if (!conn.busy) conn.socket.close(1000);
        return;
      default:
        sendSpeak(conn, { type: 'Warning', description: `Unknown message type: ${msg.type}`, code: 'UNKNOWN_MESSAGE_TYPE' });
    }
  }

  /** Generates flushed text in order: binary audio chunks, then `Flushed`. */
  async function runSpeak(conn) {
    if (conn.busy) return;
    conn.busy = true;
    try {
      while (conn.jobs.length && !conn.closed) {
        const job = conn.jobs.shift();
        const generation = conn.generation;
        const ms = countWords(job.text) * MS_PER_WORD;
        const samples = Math.round((conn.sampleRate * ms) / 1000);
        const audio = conn.encoding === 'mulaw' ? mulawTone(samples, { rate: conn.sampleRate }) : pcm16Tone(samples, { rate: conn.sampleRate });
        const bytesPerMs = (conn.sampleRate * (conn.encoding === 'mulaw' ? 1 : 2)) / 1000;
        if (speakFirstByteMs) await sleep(speakFirstByteMs);
        const started = performance.now();
        let cut = false;
        for (let i = 0; i < audio.length; i += speakChunkBytes) {
          if (conn.generation !== generation || conn.closed) {
            cut = true;
            break;
          }
          const piece = audio.subarray(i, i + speakChunkBytes);
          sendSpeak(conn, Buffer.from(piece));
          conn.audio.push({ sequence: job.sequence, bytes: piece.length, hrAt: performance.now() });
          http.notify();
          if (speakRealtime) {
            const due = started + (i + piece.length) / bytesPerMs - performance.now();
            if (due > 0) await sleep(due);
          } else if (speakSlowMs) await sleep(speakSlowMs);
        }
        if (!cut && conn.generation === generation) sendSpeak(conn, { type: 'Flushed', sequence_id: job.sequence });
      }
    } finally {
      conn.busy = false;
      if (conn.closing && !conn.closed) conn.socket.close(1000);
    }
  }

  const http = await startStreamingHttp({
    onUpgrade,
    routes: [{ method: 'POST', path: '/v1/speak', handler: speak }, { method: 'POST', path: '/v1/listen', handler: listenPrerecorded }],
  });

  const prerecordedQueue = [];
  function listenPrerecorded(req) {
    const key = deepgramKey(req.headers);
    if (!key || key.scheme !== 'Token' || (apiKey !== undefined && key.key !== apiKey)) return deepgramError(401, 'INVALID_AUTH', 'Invalid credentials.');
    const spec = prerecordedQueue.shift() ?? {};
    if (spec.status) return deepgramError(spec.status, spec.status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'Bad Request', 'scripted failure');
    if (!req.rawBody.length) return deepgramError(400, 'Bad Request', 'Bad Request: failed to process audio: corrupt or unsupported data');
    const digest = createHash('sha256').update(req.rawBody).digest('hex');
    const transcript = spec.transcript ?? `recording ${digest.slice(0, 16)} transcribed`;
    const utterances = (spec.utterances ?? [{ start: 0.08, end: 1.5, channel: 0, transcript }]).map((u) => ({
      start: u.start, end: u.end, confidence: 0.97, channel: u.channel ?? 0, transcript: u.transcript,
      words: u.transcript.split(/\s+/).map((w, i) => ({ word: w.toLowerCase(), start: u.start + i * 0.2, end: u.start + i * 0.2 + 0.18, confidence: 0.97, punctuated_word: w })),
      id: randomUUID(),
    }));
    const words = utterances.flatMap((u) => u.words);
    const results = { channels: [{ alternatives: [{ transcript, confidence: 0.97, words }] }] };
    if (req.query.utterances === 'true') results.utterances = utterances;
    return {
      status: 200,
      headers: { 'content-type': 'application/json', 'dg-request-id': randomUUID() },
      body: {
        metadata: {
          transaction_key: 'deprecated', request_id: randomUUID(), sha256: digest, created: new Date().toISOString(),
          duration: utterances.at(-1)?.end ?? 0, channels: 1, models: [MODEL_UUID], model_info: { [MODEL_UUID]: MODEL_INFO },
        },
        results,
      },
    };
  }

  async function speak(req) {
    const key = deepgramKey(req.headers);
    if (!key || (apiKey !== undefined && key.key !== apiKey)) return deepgramError(401, 'INVALID_AUTH', 'Invalid credentials.');
    let text;
    try {
      text = req.json().text;
    } catch {
      text = undefined;
    }
    if (typeof text !== 'string' || !text.trim()) return deepgramError(400, 'INVALID_REQUEST_BODY', 'Text is required.');
    const q = req.query;
    const model = q.model ?? 'aura-asteria-en';
    const encoding = q.encoding ?? 'mp3';
    const sampleRate = Number(q.sample_rate ?? (encoding === 'linear16' ? 24000 : 8000));
    if (encoding !== 'mulaw' && encoding !== 'linear16') {
      return deepgramError(400, 'UNSUPPORTED_BY_FAKE', `the fake serves only mulaw and linear16, not ${encoding}`);
    }
    if (encoding === 'mulaw' && sampleRate !== 8000 && sampleRate !== 16000) {
      return deepgramError(400, 'INVALID_QUERY_PARAMETER', 'mulaw supports sample_rate 8000 or 16000.');
    }
    const container = q.container ?? 'wav';
    const ms = countWords(text) * MS_PER_WORD;
    const samples = Math.round((sampleRate * ms) / 1000);
    let audio = encoding === 'mulaw' ? mulawTone(samples, { rate: sampleRate }) : pcm16Tone(samples, { rate: sampleRate });
    if (container === 'wav') {
      const bits = encoding === 'mulaw' ? 8 : 16;
      audio = Buffer.concat([wavHeader(audio.length, { sampleRate, bitsPerSample: bits, format: bits === 8 ? 7 : 1 }), audio]);
    }
    req.text = text;
    req.audioBytes = audio.length;
    return {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream',
        'dg-request-id': randomUUID(),
        'dg-model-name': model,
        'dg-char-count': String(text.length),
      },
      stream: async (write) => {
        for (let i = 0; i < audio.length; i += speakChunkBytes) {
          if (!(await write(audio.subarray(i, i + speakChunkBytes)))) return;
          if (speakSlowMs) await sleep(speakSlowMs, req.signal);
        }
      },
    };
  }

  const fake = {
    /** Value for DEEPGRAM_URL (ws://127.0.0.1:port). */
    url: http.url.replace(/^http/, 'ws'),
    /** The same server as http:// (for /v1/speak). */
    httpUrl: http.url,
    port: http.port,
    /** Accepted STT connections (records: query, headers, apiKey, audioBytes, controls, sent, closed…). */
    connections,
    /** Every upgrade attempt, refused ones included ({path, query, headers, status}). */
    upgrades,
    /** Recorded POST /v1/listen (pre-recorded) requests. */
    get prerecordedRequests() {
      return http.requests.filter((r) => r.path === '/v1/listen' && r.method === 'POST');
    },
    /** Queues the next pre-recorded answer: {status? (an error), transcript?, utterances?: [{start, end, transcript, channel?}]}. */
    prerecorded(spec) {
      prerecordedQueue.push(spec);
    },
    /** Recorded POST /v1/speak requests (plus `text`, `audioBytes`, `aborted`). */
    get speakRequests() {
      return http.requests.filter((r) => r.path === '/v1/speak');
    },
    /** Queues steps {afterAudioBytes, delayMs?, results: [...]}; `afterAudioBytes` counts from the previous step (or connect). Pass `conn` for a per-connection script. */
    script(steps, conn) {
      (conn ? conn.script : sharedScript).push(...steps);
      for (const c of conn ? [conn] : connections) if (!c.closed) runScript(c);
    },
    /**
     * Sends one Results now (a final one after `finalDelayMs`, then resolving once sent):
     * {transcript, is_final=true, speech_final=false, from_finalize?, start?, duration?}.
     */
    say(conn = latest(), result = {}) {
      if (finalDelayMs > 0 && (result.is_final ?? true)) {
        return sleep(finalDelayMs).then(() => emit(conn, { ...result, type: 'Results' }));
      }
      return emit(conn, { ...result, type: 'Results' });
    },
    /** Flux: sends one TurnInfo now: (conn, 'EagerEndOfTurn', 'Book a table'). */
    turnInfo(conn = latest(), event, transcript = '', extra = {}) {
      return emit(conn, { ...extra, type: 'TurnInfo', event, transcript });
    },
    /**
     * Flux: one caller turn as the service reports it, the caller having just stopped speaking:
     * StartOfTurn and an Update with `draft` (default `transcript`); after `eagerDelayMs`
     * EagerEndOfTurn(draft). When `draft` differs, the caller goes on: TurnResumed, an Update and,
     * `eagerDelayMs` later, EagerEndOfTurn(transcript). Eager events and TurnResumed only when
     * the stream asked for them (`eager_eot_threshold`), as Flux does. EndOfTurn(transcript) comes
     * `endOfTurnDelayMs` after the last end of speech. Resolves, once EndOfTurn was sent, to
     * {endOfSpeech} (performance.now() when the caller last stopped speaking).
     */
    async fluxTurn(conn = latest(), { transcript, draft = transcript, resumeAfterMs = 100 } = {}) {
      const info = (event, text) => emit(conn, { type: 'TurnInfo', event, transcript: text });
      // Flux sends eager events only to a stream opened with eager_eot_threshold.
      const eager = conn.query.eager_eot_threshold !== undefined;
      info('StartOfTurn', '');
      info('Update', draft);
      let spokeUntil = performance.now();
      if (eager && eagerDelayMs) await sleep(eagerDelayMs);
      if (eager) info('EagerEndOfTurn', draft);
      if (draft !== transcript) {
        await sleep(resumeAfterMs);
        if (eager) info('TurnResumed', draft);
        info('Update', transcript);
        spokeUntil = performance.now();
        if (eager && eagerDelayMs) await sleep(eagerDelayMs);
        if (eager) info('EagerEndOfTurn', transcript);
      }
      const rest = endOfTurnDelayMs - (performance.now() - spokeUntil);
      if (rest > 0) await sleep(rest);
      info('EndOfTurn', transcript);
      return { endOfSpeech: spokeUntil };
    },
    /** Sends UtteranceEnd (last_word_end defaults to the end of the last final word). */
    utteranceEnd(conn = latest(), last_word_end) {
      return emit(conn, { type: 'UtteranceEnd', last_word_end });
    },
    /** Sends SpeechStarted at the current audio time. */
    speechStarted(conn = latest(), timestamp) {
      return emit(conn, { type: 'SpeechStarted', timestamp });
    },
    /** Sends any JSON (or string) frame as-is, e.g. an Error or an unknown type. */
    send(conn = latest(), message) {
      return send(conn, message);
    },
    /** Kills the TCP connection with no close frame (the worker sees 1006) to exercise reconnects. */
    dropConnection(conn = latest()) {
      conn.dropped = true;
      conn.socket.terminate();
    },
    /** Closes with a proper close frame, e.g. (conn, 1011, 'NET-0000'). */
    closeConnection(conn = latest(), code = 1000, reason = '') {
      conn.socket.close(code, reason);
    },
    /** Refuses the next `count` upgrades with HTTP `status` (401 or e.g. 503) and Deepgram's error body. */
    refuse(status = 401, count = Infinity) {
      refusals.push({ status, count });
    },
    /** Stops refusing upgrades. */
    accept() {
      refusals = [];
    },
    /** Aura TTS sockets (query, headers, messages received, sent, audio, closed, closeCode). */
    speakSockets,
    /** Every TTS socket upgrade attempt, refused ones included. */
    speakUpgrades,
    /** Refuses the next `count` TTS socket upgrades with HTTP `status`. */
    refuseSpeakSockets(status = 503, count = Infinity) {
      speakRefusals.push({ status, count });
    },
    /** Stops refusing TTS socket upgrades. */
    acceptSpeakSockets() {
      speakRefusals = [];
    },
    /** Closes TTS socket `conn` (default: the latest open one). */
    closeSpeakSocket(conn = [...speakSockets].reverse().find((c) => !c.closed), code = 1000, reason = '') {
      conn?.socket.close(code, reason);
    },
    /** Answers the next `n` /v1/speak requests with HTTP `status` and Deepgram's error body. */
    failSpeak(n, status = 500) {
      http.failNext(n, deepgramError(status, status === 429 ? 'TOO_MANY_REQUESTS' : 'INTERNAL_SERVER_ERROR', 'scripted failure'), (r) => r.path === '/v1/speak');
    },
    /** Sets the delay between TTS chunks (ms). */
    slowSpeak(ms) {
      speakSlowMs = ms;
    },
    /** Resolves with the `n`-th (0-based) accepted connection once it exists. */
    waitForConnection(n = 0, timeout) {
      return http.waitFor(() => connections[n], timeout);
    },
    /** Resolves once `predicate(fake)` is truthy (re-checked on every frame, request and close). */
    waitFor(predicate, timeout) {
      return http.waitFor(() => predicate(fake), timeout);
    },
    async close() {
      for (const c of connections) {
        clearTimeout(c.idleTimer);
        c.socket.terminate();
      }
      for (const c of speakSockets) c.socket.terminate();
      wss.close();
      speakWss.close();
      await http.close();
    },
  };
  return fake;
}
