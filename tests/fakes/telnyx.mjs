// Fake Telnyx Call Control REST API (v2), as the worker calls it: `POST /v2/calls` dials
// (answers the new call's ids), `POST /v2/calls/{call_control_id}/actions/{action}` acts on a
// live call (`hangup`, `transfer`; answers `{"data": {"result": "ok"}}`). Requests must carry
// `Authorization: Bearer <API key>` or get Telnyx's 401 error body. Every request is recorded;
// `actions` lists the call actions with the call control id decoded from the path.
// Messaging API v2: `POST /v2/messages` sends a text (answers the message with `data.id`, its
// recipient `queued`); sendMessageEvent plays the signed `message.sent` / `message.finalized`.

import { randomUUID } from 'node:crypto';
import { startStreamingHttp } from './stream-http.mjs';
import { signTelnyx, telnyxEvent } from './media-clients.mjs';

/** Telnyx's error body: `{errors: [{code, title, detail}]}`. */
export function telnyxError(status, code, title, detail) {
  return { status, body: { errors: [{ code, title, detail }] } };
}

/** Starts the fake; `apiKey` is the key requests must present. */
export async function startFakeTelnyx({ apiKey, privateKey, via } = {}) {
  const actions = [];
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
    actions.push({ callControlId: decodeURIComponent(req.params.call), action, body, request: req });
    return { status: 200, body: { data: { result: 'ok' } } };
  }

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: '/v2/calls', handler: dial },
      { method: 'POST', path: '/v2/messages', handler: sendMessage },
      { method: 'POST', path: /^\/v2\/calls\/(?<call>[^/]+)\/actions\/(?<action>hangup|transfer)$/, handler: act },
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
    close: http.close,
  };
}
