// Fake ElevenLabs HTTP streaming TTS (docs/protocols.md §8):
// POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000 with `xi-api-key`.
// Answers deterministic tone audio, MS_PER_WORD (100 ms) per word, streamed in small chunks.
// Also POST …/stream/with-timestamps (the same audio as newline-delimited JSON chunks
// {audio_base64, alignment, normalized_alignment}), the variant Pipecat's ElevenLabsHttpTTSService calls.
// And the multi-context WebSocket GET /v1/text-to-speech/{voice_id}/multi-stream-input
// (docs/protocols.md "TTS over WebSocket"): contexts (`context_id`) get text, `flush` generates
// it, `close_context` lets a flushed context finish and answers `{isFinal: true, contextId}`,
// `close_socket` closes; audio goes out as `{audio: base64, isFinal: null, alignment, contextId}`.

import { randomUUID } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { startStreamingHttp, sleep, untilAborted } from './stream-http.mjs';
import { countWords, mulawTone, pcm16Tone, MS_PER_WORD } from './audio.mjs';

/** ElevenLabs' error body: `{detail: {status, message}}`. */
export function elevenlabsError(status, code, message) {
  return { status, headers: { 'content-type': 'application/json' }, body: { detail: { status: code, message } } };
}

/** Audio bytes for `text` in an ElevenLabs `output_format` (ulaw_8000, pcm_*; mp3 gets fake ID3-tagged bytes). */
export function elevenlabsAudio(text, outputFormat = 'mp3_44100_128') {
  const ms = countWords(text) * MS_PER_WORD;
  if (outputFormat === 'ulaw_8000') return mulawTone((8000 * ms) / 1000);
  const pcm = /^pcm_(\d+)$/.exec(outputFormat);
  if (pcm) {
    const rate = Number(pcm[1]);
    return pcm16Tone(Math.round((rate * ms) / 1000), { rate });
  }
  // Not raw audio: a worker that forgot output_format would play this as noise; tests can spot "ID3".
  return Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.alloc(Math.round((16000 * ms) / 1000), 0x55)]);
}

/** Bytes per millisecond of audio in an ElevenLabs `output_format` (0 when not raw audio). */
function bytesPerMs(outputFormat) {
  if (outputFormat === 'ulaw_8000') return 8;
  const pcm = /^pcm_(\d+)$/.exec(outputFormat);
  return pcm ? (Number(pcm[1]) * 2) / 1000 : 0;
}

/** Character alignment of `text` spread evenly over `ms` of audio (ElevenLabs' `alignment` shape). */
function alignment(text, ms) {
  const characters = [...text];
  const per = characters.length ? ms / 1000 / characters.length : 0;
  const round3 = (x) => Math.round(x * 1000) / 1000;
  return {
    characters,
    character_start_times_seconds: characters.map((_, i) => round3(i * per)),
    character_end_times_seconds: characters.map((_, i) => round3((i + 1) * per)),
  };
}

/**
 * Starts the fake. Options: `apiKey` (if set, only this key is accepted), `chunkBytes` (default
 * 800 = 100 ms of μ-law), `chunkDelayMs` (default 5). Latency profile (0/false = instant, the
 * default): `firstByteMs` before the first audio chunk (time to first byte) and `realtime`: each
 * chunk no sooner than the audio before it lasts (synthesis at 1× real time), instead of
 * `chunkDelayMs`.
 */
export async function startFakeElevenLabs({ apiKey, chunkBytes = 800, chunkDelayMs = 5, firstByteMs = 0, realtime = false } = {}) {
  let delayMs = chunkDelayMs;
  let stallNext = 0;

  async function tts(req) {
    req.voiceId = decodeURIComponent(req.params.voice);
    req.outputFormat = req.query.output_format ?? 'mp3_44100_128';
    const key = req.headers['xi-api-key'];
    if (!key || (apiKey !== undefined && key !== apiKey)) {
      return elevenlabsError(401, 'invalid_api_key', 'Invalid API key');
    }
    let body;
    try {
      body = req.json();
    } catch {
      return elevenlabsError(400, 'invalid_json', 'Could not parse request body.');
    }
    req.parsed = body;
    req.text = body?.text;
    if (typeof body?.text !== 'string' || !body.text.trim()) {
      return elevenlabsError(400, 'invalid_text', 'Text must not be empty.');
    }
    const audio = elevenlabsAudio(body.text, req.outputFormat);
    req.audioBytes = audio.length;
    const stall = stallNext > 0;
    if (stall) stallNext -= 1;
    const timestamps = req.params.timestamps !== undefined;
    const rate = bytesPerMs(req.outputFormat);
    // Chunk boundaries on whole samples, so every chunk decodes on its own.
    const step = rate > 8 ? chunkBytes - (chunkBytes % 2) : chunkBytes;
    return {
      status: 200,
      headers: {
        'content-type': timestamps ? 'application/json' : 'audio/mpeg',
        'request-id': randomUUID().replaceAll('-', ''),
        'character-cost': String(body.text.length),
      },
      stream: async (write) => {
        if (firstByteMs && !(await sleep(firstByteMs, req.signal))) return;
        const started = performance.now();
        let text = body.text;
        for (let i = 0; i < audio.length; i += step) {
          if (stall && i > 0) return untilAborted(req.signal);
          const piece = audio.subarray(i, i + step);
          let out = piece;
          if (timestamps) {
            // The text goes with the first chunk's alignment, like the real service's first chunk.
            const ms = rate ? (audio.length / rate) : 0;
            const chunkAlignment = text ? alignment(text, ms) : null;
            text = '';
            out = `${JSON.stringify({ audio_base64: piece.toString('base64'), alignment: chunkAlignment, normalized_alignment: chunkAlignment })}\n`;
          }
          if (!(await write(out))) return;
          if (realtime && rate) {
            const due = started + (i + piece.length) / rate - performance.now();
            if (due > 0 && !(await sleep(due, req.signal))) return;
          } else if (delayMs && !(await sleep(delayMs, req.signal))) return;
        }
      },
    };
  }

  // The multi-context socket: every socket and every message it received are recorded.
  const sockets = [];
  let socketRefusals = []; // {status, count}
  let upgradeDelayMs = 0;
  const wss = new WebSocketServer({ noServer: true });

  function refuseUpgrade(socket, status, message) {
    const body = JSON.stringify({ detail: { status: status === 401 ? 'invalid_api_key' : 'error', message } });
    socket.end([`HTTP/1.1 ${status} Error`, 'content-type: application/json', `content-length: ${Buffer.byteLength(body)}`, 'connection: close', '', body].join('\r\n'));
  }

  function onUpgrade(req, socket, head) {
    const arrived = performance.now();
    if (upgradeDelayMs > 0) {
      const delay = upgradeDelayMs;
      setTimeout(() => acceptUpgrade(req, socket, head, arrived), delay);
      return;
    }
    acceptUpgrade(req, socket, head, arrived);
  }

  function acceptUpgrade(req, socket, head, arrived) {
    const url = new URL(req.url, 'http://fake');
    const m = /^\/v1\/text-to-speech\/(?<voice>[^/]+)\/multi-stream-input$/.exec(url.pathname);
    const attempt = { path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, status: 101, hrAt: arrived, answeredAt: performance.now() };
    socketUpgrades.push(attempt);
    http.notify();
    const key = req.headers['xi-api-key'];
    let refusal = null;
    if (!m) refusal = [404, 'Not found'];
    else if (socketRefusals.length) {
      const r = socketRefusals[0];
      if (--r.count <= 0) socketRefusals.shift();
      refusal = [r.status, 'scripted refusal'];
    } else if (!key || (apiKey !== undefined && key !== apiKey)) refusal = [401, 'Invalid API key'];
    if (refusal) {
      attempt.status = refusal[0];
      refuseUpgrade(socket, ...refusal);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = {
        id: sockets.length,
        socket: ws,
        voiceId: decodeURIComponent(m.groups.voice),
        query: attempt.query,
        headers: req.headers,
        outputFormat: attempt.query.output_format ?? 'mp3_44100_128',
        /** Every JSON message received, with `hrAt` (performance.now()). */
        messages: [],
        /** Audio messages sent per context id, and finals. */
        sentAudio: [],
        finals: [],
        contexts: new Map(),
        closed: false,
        closeCode: null,
      };
      sockets.push(conn);
      const inactivity = Number(attempt.query.inactivity_timeout ?? 20) * 1000;
      const resetIdle = () => {
        clearTimeout(conn.idleTimer);
        conn.idleTimer = setTimeout(() => ws.close(1008, 'inactivity timeout'), inactivity);
      };
      resetIdle();
      ws.on('message', (data, isBinary) => {
        resetIdle();
        let msg;
        try {
          msg = JSON.parse(data.toString());
        } catch {
          msg = { invalid: data.toString() };
        }
        msg.hrAt = performance.now();
        conn.messages.push(msg);
        onSocketMessage(conn, msg, isBinary);
        http.notify();
      });
      ws.on('close', (code) => {
        conn.closed = true;
        conn.closeCode = code;
        clearTimeout(conn.idleTimer);
        for (const ctx of conn.contexts.values()) ctx.abort = true;
        http.notify();
      });
      ws.on('error', () => {});
      http.notify();
    });
  }

  const sendJson = (conn, message) => {
    if (conn.socket.readyState !== conn.socket.OPEN) return false;
    conn.socket.send(JSON.stringify(message));
    return true;
  };

  function onSocketMessage(conn, msg) {
    if (msg.invalid !== undefined) {
      sendJson(conn, { error: 'invalid_message', message: 'Message is not JSON.' });
      return;
    }
    if (msg.close_socket) {
      // Flushed contexts finish first.
      Promise.all([...conn.contexts.values()].map((c) => c.done)).then(() => conn.socket.close(1000));
      return;
    }
    const id = msg.context_id ?? 'default';
    let ctx = conn.contexts.get(id);
    if (msg.close_context) {
      if (!ctx) return;
      ctx.closing = true;
      ctx.buffer = '';
      // Already flushed text keeps generating (the API's rule); then the context's final.
      ctx.done.then(() => {
        if (ctx.abort) return;
        conn.finals.push(id);
        sendJson(conn, { isFinal: true, contextId: id });
        conn.contexts.delete(id);
      });
      return;
    }
    if (typeof msg.text !== 'string') return;
    if (!ctx) {
      ctx = { id, buffer: '', done: Promise.resolve(), closing: false, abort: false };
      conn.contexts.set(id, ctx);
    }
    if (ctx.closing) return;
    ctx.buffer += msg.text;
    if (msg.flush && ctx.buffer.trim()) {
      const text = ctx.buffer;
      ctx.buffer = '';
      ctx.done = ctx.done.then(() => generate(conn, ctx, text));
    }
  }

  /** Streams `text`'s audio on `conn` for context `ctx` (same pacing knobs as the HTTP route). */
  async function generate(conn, ctx, text) {
    const audio = elevenlabsAudio(text.trim(), conn.outputFormat);
    const rate = bytesPerMs(conn.outputFormat);
    const step = rate > 8 ? chunkBytes - (chunkBytes % 2) : chunkBytes;
    if (firstByteMs) await sleep(firstByteMs);
    const stall = stallNext > 0;
    if (stall) stallNext -= 1;
    const started = performance.now();
    let first = true;
    for (let i = 0; i < audio.length; i += step) {
      if (stall && i > 0) {
        while (!ctx.abort && !conn.closed) await sleep(20);
      }
      if (ctx.abort || conn.closed) return;
      const piece = audio.subarray(i, i + step);
      const ms = rate ? piece.length / rate : 0;
      const chunkAlignment = first ? alignment(text, rate ? audio.length / rate : 0) : null;
      first = false;
      if (!sendJson(conn, { audio: piece.toString('base64'), isFinal: null, normalizedAlignment: chunkAlignment, alignment: chunkAlignment, contextId: ctx.id })) return;
      conn.sentAudio.push({ contextId: ctx.id, bytes: piece.length, hrAt: performance.now(), ms });
      http.notify();
      if (realtime && rate) {
        const due = started + (i + piece.length) / rate - performance.now();
        if (due > 0) await sleep(due);
      } else if (delayMs) await sleep(delayMs);
    }
  }

  const socketUpgrades = [];
  const http = await startStreamingHttp({
    onUpgrade,
    routes: [{ method: 'POST', path: /^\/v1\/text-to-speech\/(?<voice>[^/]+)\/stream(?<timestamps>\/with-timestamps)?$/, handler: tts }],
  });

  return {
    /** Value for ELEVENLABS_URL. */
    url: http.url,
    port: http.port,
    /** Recorded requests: voiceId, outputFormat, query, headers, parsed body, text, audioBytes, aborted, finished. */
    requests: http.requests,
    /** Answers the next `n` requests with HTTP `status` and ElevenLabs' error body. */
    failNext(n, status = 500) {
      const code = status === 429 ? 'too_many_concurrent_requests' : status === 401 ? 'invalid_api_key' : 'internal_error';
      http.failNext(n, elevenlabsError(status, code, 'scripted failure'));
    },
    /** Sets the delay between audio chunks (ms): slow mode. */
    slow(ms) {
      delayMs = ms;
    },
    /** The next `n` responses (or flushed socket texts) send one chunk and then hang until the client aborts. */
    stallNext(n = 1) {
      stallNext += n;
    },
    /** Multi-context sockets (voiceId, query, headers, messages, sentAudio, finals, closed, closeCode). */
    sockets,
    /** Every socket upgrade attempt, refused ones included ({path, query, headers, status}). */
    socketUpgrades,
    /** Every text message any socket received, in order (each with `hrAt`). */
    get socketMessages() {
      return sockets.flatMap((c) => c.messages).sort((a, b) => a.hrAt - b.hrAt);
    },
    /** Every text sent to be spoken, over HTTP or a socket, in the order received (trimmed). */
    get spokenTexts() {
      const http = this.requests.filter((r) => typeof r.text === 'string').map((r) => ({ hrAt: r.hrAt, text: r.text }));
      const ws = sockets.flatMap((c) => c.messages).filter((m) => typeof m.text === 'string' && m.text.trim());
      return [...http, ...ws].sort((a, b) => a.hrAt - b.hrAt).map((m) => m.text.trim());
    },
    /** Refuses the next `count` socket upgrades with HTTP `status`. */
    refuseSockets(status = 503, count = Infinity) {
      socketRefusals.push({ status, count });
    },
    /** Answers every socket upgrade `ms` late (a slow handshake); 0 answers at once. */
    delayUpgrades(ms) {
      upgradeDelayMs = ms;
    },
    /** Stops refusing socket upgrades. */
    acceptSockets() {
      socketRefusals = [];
    },
    /** Closes socket `conn` (default: the latest open one) with `code`. */
    closeSocket(conn = [...sockets].reverse().find((c) => !c.closed), code = 1000, reason = '') {
      conn?.socket.close(code, reason);
    },
    waitFor: http.waitFor,
    async close() {
      for (const c of sockets) {
        clearTimeout(c.idleTimer);
        c.socket.terminate();
      }
      wss.close();
      await http.close();
    },
  };
}
