// Fake ElevenLabs HTTP streaming TTS (docs/protocols.md §8):
// POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000 with `xi-api-key`.
// Answers deterministic tone audio, MS_PER_WORD (100 ms) per word, streamed in small chunks.
// Also POST …/stream/with-timestamps (the same audio as newline-delimited JSON chunks
// {audio_base64, alignment, normalized_alignment}), the variant Pipecat's ElevenLabsHttpTTSService calls.

import { randomUUID } from 'node:crypto';
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

  const http = await startStreamingHttp({
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
    /** The next `n` responses send one chunk and then hang until the client aborts. */
    stallNext(n = 1) {
      stallNext += n;
    },
    waitFor: http.waitFor,
    close: http.close,
  };
}
