// WebSocket fakes: a generic server (base for fake STT/TTS providers) and a Twilio Media
// Streams client that speaks the carrier's real protocol to the worker.

import { WebSocketServer, WebSocket } from 'ws';
import { twilioSignature } from './twilio.mjs';
import { TEST_VARS } from '../harness.mjs';

/** A WebSocket server on 127.0.0.1 that records connections and messages. */
export async function startFakeWs({ onConnection } = {}) {
  const connections = [];
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (socket, req) => {
    const conn = { socket, url: req.url, headers: req.headers, messages: [], closed: false };
    connections.push(conn);
    socket.on('message', (data, isBinary) => conn.messages.push(isBinary ? Buffer.from(data) : data.toString()));
    socket.on('close', (code) => {
      conn.closed = true;
      conn.closeCode = code;
    });
    onConnection?.(conn);
  });
  await new Promise((resolve) => wss.on('listening', resolve));
  const { port } = wss.address();
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    connections,
    close() {
      for (const c of connections) c.socket.terminate();
      return new Promise((resolve) => wss.close(resolve));
    },
  };
}

/** Opens a WebSocket and collects what it receives. */
export async function connectWs(url, { headers } = {}) {
  const socket = new WebSocket(url, { headers });
  const received = [];
  socket.on('message', (data, isBinary) => received.push(isBinary ? Buffer.from(data) : data.toString()));
  const closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  return { socket, received, closed, send: (m) => socket.send(typeof m === 'string' ? m : JSON.stringify(m)) };
}

/**
 * A Twilio Media Streams client: opens the socket with the `X-Twilio-Signature` Twilio puts on
 * the upgrade (HMAC-SHA1 with the auth token over the `<Stream url>`, no parameters), then sends
 * `connected`, `start`, paced `media` frames (160 bytes of μ-law per 20 ms, base64, numeric fields
 * as strings) and `stop`, like Twilio does.
 */
export class TwilioMediaClient {
  constructor(conn, { streamSid = 'MZ' + 'a'.repeat(32), callSid = 'CA' + 'b'.repeat(32), accountSid = 'AC' + 'c'.repeat(32) } = {}) {
    Object.assign(this, conn, { streamSid, callSid, accountSid, sequence: 0, chunk: 0, timestamp: 0 });
  }

  /**
   * Connects to `url` signed with `authToken` (default: the harness's TWILIO_AUTH_TOKEN);
   * `signature` overrides the header (`null`: none), `signedUrl` signs another URL than `url`.
   */
  static async connect(url, { authToken = TEST_VARS.TWILIO_AUTH_TOKEN, signature, signedUrl = url, ...options } = {}) {
    const sig = signature === undefined ? twilioSignature(authToken, signedUrl) : signature;
    const headers = sig === null ? undefined : { 'x-twilio-signature': sig };
    return new TwilioMediaClient(await connectWs(url, { headers }), options);
  }

  next() {
    this.sequence += 1;
    return String(this.sequence);
  }

  connected() {
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
  }

  start(customParameters = {}) {
    this.send({
      event: 'start',
      sequenceNumber: this.next(),
      start: {
        accountSid: this.accountSid,
        streamSid: this.streamSid,
        callSid: this.callSid,
        tracks: ['inbound'],
        customParameters,
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: this.streamSid,
    });
  }

  /** Sends one 20 ms frame of μ-law audio (default: silence, 0xFF). */
  media(bytes = Buffer.alloc(160, 0xff)) {
    this.chunk += 1;
    this.send({
      event: 'media',
      sequenceNumber: this.next(),
      media: { track: 'inbound', chunk: String(this.chunk), timestamp: String(this.timestamp), payload: bytes.toString('base64') },
      streamSid: this.streamSid,
    });
    this.timestamp += Math.round(bytes.length / 8);
  }

  /** Streams `frames` frames paced in real time (20 ms apart). */
  async stream(frames, bytesFor = () => Buffer.alloc(160, 0xff)) {
    for (let i = 0; i < frames; i++) {
      this.media(bytesFor(i));
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  dtmf(digit) {
    this.send({ event: 'dtmf', streamSid: this.streamSid, sequenceNumber: this.next(), dtmf: { track: 'inbound_track', digit } });
  }

  mark(name) {
    this.send({ event: 'mark', sequenceNumber: this.next(), streamSid: this.streamSid, mark: { name } });
  }

  stop() {
    this.send({ event: 'stop', sequenceNumber: this.next(), stop: { accountSid: this.accountSid, callSid: this.callSid }, streamSid: this.streamSid });
  }

  /** Parsed JSON frames the worker sent us. */
  frames() {
    return this.received.filter((m) => typeof m === 'string').map((m) => JSON.parse(m));
  }

  close() {
    this.socket.close(1000);
  }
}
