// Carrier media-stream clients for Telnyx (docs/protocols.md §5.3) and Exotel (§5.4), mirroring
// TwilioMediaClient in ws.mjs, plus signers for Telnyx (Ed25519, docs/protocols.md §1.4) and Retell
// (x-retell-signature, §1.5) webhooks.

import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { connectWs } from './ws.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class MediaClientBase {
  /** Parsed JSON frames the worker sent us. */
  frames() {
    return this.received.filter((m) => typeof m === 'string').map((m) => JSON.parse(m));
  }

  /** All audio the worker sent in `media` frames, decoded and concatenated. */
  receivedAudio() {
    return Buffer.concat(this.frames().filter((f) => f.event === 'media').map((f) => Buffer.from(f.media.payload, 'base64')));
  }

  /** Streams `frames` media frames paced in real time (`frameMs` apart). */
  async stream(frames, bytesFor = () => this.silence()) {
    for (let i = 0; i < frames; i++) {
      this.media(bytesFor(i));
      await sleep(this.frameMs);
    }
  }

  close(code = 1000) {
    this.socket.close(code);
  }
}

/**
 * A Telnyx media-streaming client: `connected`, `start` (snake_case, media_format PCMU 8 kHz),
 * 20 ms `media` frames (160 bytes μ-law, base64, numeric fields as strings), `dtmf`, `mark`, `stop`.
 */
export class TelnyxMediaClient extends MediaClientBase {
  constructor(conn, { streamId = randomUUID().toUpperCase(), callControlId = `v3:${randomUUID()}`, callSessionId = randomUUID(), userId = randomUUID().toUpperCase(), from = '+13122010094', to = '+13122123456', authToken } = {}) {
    super();
    Object.assign(this, conn, { streamId, callControlId, callSessionId, userId, from, to, authToken, sequence: 0, chunk: 0, timestamp: 0, frameMs: 20 });
  }

  /** Opens the socket (with `x-telnyx-streaming-auth-token` when `authToken` is given). */
  static async connect(url, options = {}) {
    const headers = options.authToken ? { 'x-telnyx-streaming-auth-token': options.authToken } : undefined;
    return new TelnyxMediaClient(await connectWs(url, { headers }), options);
  }

  next() {
    this.sequence += 1;
    return String(this.sequence);
  }

  silence() {
    return Buffer.alloc(160, 0xff);
  }

  connected() {
    this.send({ event: 'connected', version: '1.0.0', ...(this.authToken ? { connected: { 'x-telnyx-streaming-auth-token': this.authToken } } : {}) });
  }

  start(customParameters = {}, { clientState = Buffer.from('phone-agent').toString('base64'), tags = [] } = {}) {
    this.send({
      event: 'start',
      sequence_number: this.next(),
      stream_id: this.streamId,
      start: {
        user_id: this.userId, call_control_id: this.callControlId, call_session_id: this.callSessionId,
        from: this.from, to: this.to, tags, client_state: clientState, custom_parameters: customParameters,
        media_format: { encoding: 'PCMU', sample_rate: 8000, channels: 1 },
      },
    });
  }

  /** Sends one frame of μ-law audio (default: 20 ms of silence). */
  media(bytes = this.silence()) {
    this.chunk += 1;
    this.send({
      event: 'media', sequence_number: this.next(), stream_id: this.streamId,
      media: { track: 'inbound', chunk: String(this.chunk), timestamp: String(this.timestamp), payload: bytes.toString('base64') },
    });
    this.timestamp += Math.round(bytes.length / 8);
  }

  dtmf(digit) {
    this.send({ event: 'dtmf', stream_id: this.streamId, sequence_number: this.next(), dtmf: { digit } });
  }

  /** Echoes a mark (Telnyx does so once the audio queued before it has played, or on `clear`). */
  mark(name) {
    this.send({ event: 'mark', stream_id: this.streamId, sequence_number: this.next(), mark: { name } });
  }

  error(code = 100002, title = 'unknown_error', detail = 'scripted error') {
    this.send({ event: 'error', stream_id: this.streamId, payload: { code, title, detail } });
  }

  stop() {
    this.send({ event: 'stop', sequence_number: this.next(), stream_id: this.streamId, stop: { user_id: this.userId, call_control_id: this.callControlId } });
  }
}

/**
 * An Exotel Voicebot client: `connected`, `start` (snake_case, string numbers, media_format
 * audio/x-raw), `media` every 100 ms of PCM16 little-endian (1600 bytes at 8 kHz), `dtmf`, `mark`, `stop`.
 */
export class ExotelMediaClient extends MediaClientBase {
  constructor(conn, { streamSid = `MZ${randomUUID().replaceAll('-', '')}`, callSid = `CA${randomUUID().replaceAll('-', '')}`, accountSid = 'acme1', from = '+919876543210', to = '+918047491899', sampleRate = 8000 } = {}) {
    super();
    Object.assign(this, conn, { streamSid, callSid, accountSid, from, to, sampleRate, sequence: 0, chunk: 0, timestamp: 0, frameMs: 100 });
  }

  /** Opens the socket; `basic: 'KEY:TOKEN'` sends `Authorization: Basic …` as Exotel does for URL credentials. */
  static async connect(url, options = {}) {
    const headers = options.basic ? { authorization: `Basic ${Buffer.from(options.basic).toString('base64')}` } : undefined;
    return new ExotelMediaClient(await connectWs(url, { headers }), options);
  }

  next() {
    this.sequence += 1;
    return String(this.sequence);
  }

  /** 100 ms of PCM16 silence at the stream's sample rate. */
  silence() {
    return Buffer.alloc((this.sampleRate / 10) * 2);
  }

  connected() {
    this.send({ event: 'connected' });
  }

  start(customParameters = {}) {
    this.send({
      event: 'start',
      sequence_number: this.next(),
      stream_sid: this.streamSid,
      start: {
        stream_sid: this.streamSid, call_sid: this.callSid, account_sid: this.accountSid, from: this.from, to: this.to,
        custom_parameters: customParameters,
        media_format: { encoding: 'audio/x-raw', sample_rate: String(this.sampleRate), bit_rate: '16' },
      },
    });
  }

  /** Sends one chunk of PCM16 LE audio (default: 100 ms of silence). */
  media(bytes = this.silence()) {
    this.chunk += 1;
    this.send({
      event: 'media', sequence_number: this.next(), stream_sid: this.streamSid,
      media: { chunk: String(this.chunk), timestamp: String(this.timestamp), payload: bytes.toString('base64') },
    });
    this.timestamp += Math.round((bytes.length / 2 / this.sampleRate) * 1000);
  }

  dtmf(digit, duration = 100) {
    this.send({ event: 'dtmf', sequence_number: this.next(), stream_sid: this.streamSid, dtmf: { digit, duration: String(duration) } });
  }

  mark(name) {
    this.send({ event: 'mark', sequence_number: this.next(), stream_sid: this.streamSid, mark: { name } });
  }

  stop(reason = 'callended') {
    this.send({ event: 'stop', sequence_number: this.next(), stream_sid: this.streamSid, stop: { call_sid: this.callSid, account_sid: this.accountSid, reason } });
  }
}

// ---- Telnyx webhooks (Ed25519) ---------------------------------------------------------------

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 key pair for Telnyx signing: {privateKey, publicKey (base64 of the raw 32 bytes, for TELNYX_PUBLIC_KEY)}; `seedHex` makes it deterministic. */
export function telnyxKeyPair(seedHex) {
  const privateKey = seedHex
    ? createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, Buffer.from(seedHex, 'hex')]), format: 'der', type: 'pkcs8' })
    : generateKeyPairSync('ed25519').privateKey;
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: spki.subarray(spki.length - 32).toString('base64') };
}

/** Telnyx headers: `telnyx-signature-ed25519` = base64 Ed25519 over `${timestamp}|${body}`, and `telnyx-timestamp`. */
export function signTelnyx(privateKey, timestamp, body) {
  const message = Buffer.concat([Buffer.from(`${timestamp}|`), Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8')]);
  return { 'telnyx-signature-ed25519': sign(null, message, privateKey).toString('base64'), 'telnyx-timestamp': String(timestamp) };
}

/** A Telnyx webhook envelope {data: {event_type, id, occurred_at, payload, record_type}, meta}. */
export function telnyxEvent(eventType, payload = {}, { id = randomUUID(), deliveredTo = 'https://example.com/webhooks' } = {}) {
  return {
    data: { event_type: eventType, id, occurred_at: new Date().toISOString(), payload, record_type: 'event' },
    meta: { attempt: 1, delivered_to: deliveredTo },
  };
}

/** POSTs `payload` (object or raw string) to `url` signed like Telnyx. Resolves to {status, text, body}. */
export async function sendTelnyxWebhook(url, privateKey, payload, { timestamp = Math.floor(Date.now() / 1000) } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...signTelnyx(privateKey, timestamp, body) }, body });
  return { status: res.status, text: await res.text(), body };
}

// ---- Retell webhooks --------------------------------------------------------------------------

/** x-retell-signature: `v=<unix ms>,d=<hex HMAC-SHA256(apiKey, body + ms)>`. */
export function retellSignature(apiKey, body, timestampMs = Date.now()) {
  const digest = createHmac('sha256', apiKey).update(`${body}${timestampMs}`, 'utf8').digest('hex');
  return `v=${timestampMs},d=${digest}`;
}

/** POSTs `payload` (object or raw string) to `url` signed like Retell. Resolves to {status, text, body}. */
export async function sendRetellWebhook(url, apiKey, payload, { timestampMs = Date.now() } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-retell-signature': retellSignature(apiKey, body, timestampMs) }, body });
  return { status: res.status, text: await res.text(), body };
}
