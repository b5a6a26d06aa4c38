// Fake Telnyx Call Control REST API (v2), as the worker calls it: `POST /v2/calls` dials
// (answers the new call's ids), `POST /v2/calls/{call_control_id}/actions/{action}` acts on a
// live call (`hangup`, `transfer`, `record_start` with its required `format` mp3|wav and
// `channels` single|dual, `record_stop`; answers `{"data": {"result": "ok"}}`). Requests must carry
// `Authorization: Bearer <API key>` or get Telnyx's 401 error body. Every request is recorded;
// `actions` lists the call actions with the call control id decoded from the path.
// Messaging API v2: `POST /v2/messages` sends a text (answers the message with `data.id`, its
// recipient `queued`); sendMessageEvent plays the signed `message.sent` / `message.finalized`.

// Recordings: `sendRecordingSaved` completes one and POSTs Telnyx's Ed25519-signed
// `call.recording.saved` webhook; its `recording_urls` are pre-signed links to a separate storage
// server (`storageUrl`, S3-like: a link with a wrong signature is 403, a request that also
// carries an Authorization header is 400, as S3 refuses two auth mechanisms).

import { createHmac, randomUUID } from 'node:crypto';
import { startStreamingHttp } from './stream-http.mjs';
import { signTelnyx, telnyxEvent } from './media-clients.mjs';

/** Telnyx's error body: `{errors: [{code, title, detail}]}`. */
export function telnyxError(status, code, title, detail) {
  return { status, body: { errors: [{ code, title, detail }] } };
}

/** Starts the fake; `apiKey` is the key requests must present. */
export async function startFakeTelnyx({ apiKey, privateKey, signingKey = privateKey, via } = {}) {
  const actions = [];
  const recordings = new Map();
  const storageSecret = randomUUID();
  const presign = (path) => createHmac('sha256', storageSecret).update(path).digest('hex');
  const messages = new Map();

  function messageRecord(m) {
    return {
      record_type: 'message', id: m.id, direction: 'outbound', type: 'SMS', messaging_profile_id: m.profileId,
      from: { phone_number: m.from, carrier: 'Telnyx', line_type: 'Wireless' },
      to: [{ phone_number: m.to, status: m.status, carrier: 'T-MOBILE USA, INC.', line_type: 'Wireless' }],
      text: m.text, media: [], webhook_url: m.webhookUrl, webhook_failover_url: null, encoding: 'GSM-7', parts: 1,
      tags: [], cost: null, received_at: m.receivedAt, sent_at: null, completed_at: null, valid_until: null, errors: [],
    };
  }

  function sendMessage(req) {
    const { body, error } = parseBody(req);
    const refused = authenticate(req) ?? error;
    if (refused) return refused;
    if (!body.to) return telnyxError(422, '10032', 'Missing required parameter', "The 'to' parameter is required.");
    if (!body.from) return telnyxError(422, '10032', 'Missing required parameter', "The 'from' parameter is required.");
    if (!body.text) return telnyxError(422, '10032', 'Missing required parameter', "The 'text' parameter is required.");
    const m = { id: randomUUID(), from: body.from, to: body.to, text: body.text, status: 'queued', webhookUrl: body.webhook_url ?? null, profileId: randomUUID(), receivedAt: new Date().toISOString() };
    messages.set(m.id, m);
    return { status: 200, body: { data: messageRecord(m) } };
  }

  function authenticate(req) {
    if (req.headers.authorization === `Bearer ${apiKey}`) return null;
    return telnyxError(401, '10009', 'Authentication failed', 'The API key you provided is invalid.');
  }

  function parseBody(req) {
    try {
      return { body: JSON.parse(req.body || '{}') };
    } catch {
      return { error: telnyxError(400, '10015', 'Invalid JSON', 'The request body is not valid JSON.') };
    }
  }

  function dial(req) {
    const { body, error } = parseBody(req);
    const refused = authenticate(req) ?? error;
    if (refused) return refused;
    if (!body.to) return telnyxError(422, '10032', 'Missing required parameter', "The 'to' parameter is required.");
    return {
      status: 200,
      body: { data: { record_type: 'call', call_control_id: `v3:${randomUUID()}`, call_leg_id: randomUUID(), call_session_id: randomUUID(), is_alive: false } },
    };
  }

  function act(req) {
    const { body, error } = parseBody(req);
    const refused = authenticate(req) ?? error;
    if (refused) return refused;
    const { action } = req.params;
    if (action === 'transfer' && !body.to) return telnyxError(422, '10032', 'Missing required parameter', "The 'to' parameter is required.");
    if (action === 'record_start') {
      if (!['mp3', 'wav'].includes(body.format)) return telnyxError(422, '10032', 'Invalid parameter', "'format' must be mp3 or wav.");
      if (!['single', 'dual'].includes(body.channels)) return telnyxError(422, '10032', 'Invalid parameter', "'channels' must be single or dual.");
    }
    const callControlId = decodeURIComponent(req.params.call);
    actions.push({ callControlId, action, body, request: req });
    if (action === 'record_start') {
      const id = randomUUID();
      recordings.set(id, { id, callControlId, format: body.format, channels: body.channels, startedAt: new Date().toISOString(), status: 'recording', audio: null });
    }
    return { status: 200, body: { data: { result: 'ok' } } };
  }

  const storage = await startStreamingHttp({
    routes: [{
      method: 'GET',
      path: /^\/telephony-recorder-prod\/(?<id>[0-9a-f-]+)\.(?<ext>mp3|wav)$/,
      handler(req) {
        if (req.headers.authorization) return { status: 400, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>' };
        const sig = new URLSearchParams(req.search ?? '').get('X-Amz-Signature');
        if (sig !== presign(req.path)) return { status: 403, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>SignatureDoesNotMatch</Code></Error>' };
        const rec = recordings.get(req.params.id);
        if (!rec?.audio) return { status: 404, body: '<Error><Code>NoSuchKey</Code></Error>' };
        return { status: 200, headers: { 'content-type': req.params.ext === 'mp3' ? 'audio/mpeg' : 'audio/wav', 'content-length': String(rec.audio.length) }, body: rec.audio };
      },
    }],
  });
  const presignedUrl = (id, ext) => {
    const path = `/telephony-recorder-prod/${id}.${ext}`;
    return `${storage.url}${path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=600&X-Amz-Signature=${presign(path)}`;
  };

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: '/v2/calls', handler: dial },
      { method: 'POST', path: '/v2/messages', handler: sendMessage },
      { method: 'POST', path: /^\/v2\/calls\/(?<call>[^/]+)\/actions\/(?<action>hangup|transfer|record_start|record_stop)$/, handler: act },
    ],
  });

  return {
    /** Value for TELNYX_API_URL. */
    url: http.url,
    /** Every request (method, path, headers, body, at). */
    requests: http.requests,
    /** Call actions accepted: {callControlId, action, body (parsed JSON), request}. */
    actions,
    /** Messages sent: {id, from, to, text, status, webhookUrl}. */
    messages,
    /** POST /v2/messages requests only. */
    get messageRequests() {
      return http.requests.filter((r) => r.path === '/v2/messages' && r.method === 'POST');
    },
    /**
     * Sends message `id`'s `eventType` webhook (`message.sent`, or `message.finalized` with the
     * recipient `status` delivered|sending_failed|delivery_failed) to its webhook_url, signed with
     * `privateKey`. Resolves to the worker's {status, text}.
     */
    async sendMessageEvent(id, eventType, status = eventType === 'message.sent' ? 'sent' : 'delivered') {
      const m = messages.get(id);
      if (!m?.webhookUrl) throw new Error(`fake telnyx: message ${id} has no webhook_url`);
      m.status = status;
      const body = JSON.stringify(telnyxEvent(eventType, messageRecord(m), { deliveredTo: m.webhookUrl }));
      const target = via ? new URL(new URL(m.webhookUrl).pathname, via).toString() : m.webhookUrl;
      const res = await fetch(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signTelnyx(privateKey, Math.floor(Date.now() / 1000), body) },
        body,
      });
      return { status: res.status, text: await res.text() };
    },
    /** Answers the next `n` requests (those `match(request)` accepts) with HTTP `status` and Telnyx's error body. */
    failNext(n, status = 500, match = undefined) {
      http.failNext(n, telnyxError(status, '10007', 'Unexpected error', 'An unexpected error occured.'), match);
    },
    waitFor: http.waitFor,
    /** Recordings started with `record_start`, by id: {id, callControlId, format, channels, status, audio}. */
    recordings,
    /** Origin of the recording storage (for TELNYX_RECORDING_ORIGINS); its requests. */
    storageUrl: storage.url,
    storageRequests: storage.requests,
    /** Answers the next `n` storage requests with HTTP `status`. */
    failStorage(n, status = 500) {
      storage.failNext(n, { status, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>InternalError</Code></Error>' });
    },
    /**
     * The signed `call.recording.saved` webhook of the recording started on `callControlId`
     * holding `audio`: {body (the exact JSON text), send(url, {privateKey?}) → {status, text, json}}.
     * `payload` replaces payload fields (e.g. recording_urls); sending the same body twice is
     * Telnyx's retry of one webhook.
     */
    recordingSaved(callControlId, audio, { payload = {} } = {}) {
      const rec = [...recordings.values()].find((r) => r.callControlId === callControlId && r.status === 'recording');
      if (!rec) throw new Error(`fake telnyx: no recording in progress on ${callControlId}`);
      rec.status = 'saved';
      rec.audio = audio;
      const body = JSON.stringify({
        data: {
          event_type: 'call.recording.saved', id: randomUUID(), occurred_at: new Date().toISOString(), record_type: 'event',
          payload: {
            call_control_id: callControlId, call_leg_id: randomUUID(), call_session_id: randomUUID(), connection_id: '1494404757140276705',
            client_state: null, channels: rec.channels, recording_id: rec.id,
            recording_started_at: rec.startedAt, recording_ended_at: new Date().toISOString(),
            recording_urls: { mp3: presignedUrl(rec.id, 'mp3'), wav: presignedUrl(rec.id, 'wav') }, public_recording_urls: {},
            ...payload,
          },
        },
        meta: { attempt: 1, delivered_to: 'https://example.com/webhooks/telnyx' },
      });
      return {
        body,
        async send(url, { privateKey = signingKey } = {}) {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...signTelnyx(privateKey, Math.floor(Date.now() / 1000), body) }, body });
          const text = await res.text();
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          return { status: res.status, text, json };
        },
      };
    },
    waitFor: http.waitFor,
    async close() {
      await storage.close();
      await http.close();
    },
  };
}
