// Fake ElevenLabs HTTP streaming TTS (docs/protocols.md §8):
// POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000 with `xi-api-key`.
// Answers deterministic tone audio, MS_PER_WORD (100 ms) per word, streamed in small chunks.

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

/**
 * Starts the fake. Options: `apiKey` (if set, only this key is accepted), `chunkBytes` (default
 * 800 = 100 ms of μ-law), `chunkDelayMs` (default 5).
 */
export async function startFakeElevenLabs({ apiKey, chunkBytes = 800, chunkDelayMs = 5 } = {}) {
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
    return {
      status: 200,
      headers: {
        'content-type': 'audio/mpeg',
        'request-id': randomUUID().replaceAll('-', ''),
        'character-cost': String(body.text.length),
      },
      stream: async (write) => {
        for (let i = 0; i < audio.length; i += chunkBytes) {
          if (stall && i > 0) return untilAborted(req.signal);
          if (!(await write(audio.subarray(i, i + chunkBytes)))) return;
          if (delayMs && !(await sleep(delayMs, req.signal))) return;
        }
      },
    };
  }

  const http = await startStreamingHttp({
    routes: [{ method: 'POST', path: /^\/v1\/text-to-speech\/(?<voice>[^/]+)\/stream$/, handler: tts }],
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
