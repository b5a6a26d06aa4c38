// Fake Bland.ai (docs/protocols.md §9.3, §1.6): POST /v1/calls (header `authorization: <key>`),
// GET /v1/calls/{id}, POST /v1/calls/{id}/stop, plus signed post-call webhooks
// (`X-Webhook-Signature`: hex HMAC-SHA256 of the raw body).

import { createHmac, randomUUID } from 'node:crypto';
import { startStreamingHttp } from './stream-http.mjs';

/** Bland's `start_time` format: `YYYY-MM-DD HH:MM:SS` with an optional ` ±HH:MM` offset (UTC without). */
export const BLAND_START_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?: ([+-])(\d{2}):(\d{2}))?$/;

/** Milliseconds since the epoch of a Bland `start_time` string, or null if malformed. */
export function parseBlandStartTime(s) {
  const m = BLAND_START_TIME.exec(s ?? '');
  if (!m) return null;
  const [, y, mo, d, h, mi, se, sign, oh, om] = m;
  const offsetMin = sign ? (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) : 0;
  return Date.UTC(+y, +mo - 1, +d, +h, +mi, +se) - offsetMin * 60_000;
}

/** Bland's error body: `{status: "error", message, errors}`. */
export function blandError(status, message, errors = []) {
  return { status, body: { status: 'error', message, errors } };
}

/** X-Webhook-Signature: hex HMAC-SHA256(secret, raw body). */
export function blandSignature(secret, body) {
  return createHmac('sha256', secret).update(Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8')).digest('hex');
}

/** POSTs `payload` (object or raw string) to `url` with Bland's signature header. Resolves to {status, text, body (sent)}. */
export async function sendBlandWebhook(url, secret, payload, { headers = {} } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-webhook-signature': blandSignature(secret, body), ...headers },
    body,
  });
  return { status: res.status, text: await res.text(), body };
}

/**
 * Starts the fake. Options: `apiKey` (if set, only this key is accepted, bare or as Bearer),
 * `webhookSecret` and `via` (an origin such as worker.url) for `complete()`.
 */
export async function startFakeBland({ apiKey, webhookSecret, via } = {}) {
  const calls = new Map();

  function authenticate(req) {
    const raw = req.headers.authorization;
    const key = raw?.replace(/^Bearer /, '');
    req.apiKey = key ?? null;
    if (!key || (apiKey !== undefined && key !== apiKey)) return blandError(401, 'Invalid API key.');
    return null;
  }

  function details(call) {
    const b = call.body;
    return {
      call_id: call.id, c_id: call.id, batch_id: null, to: b.phone_number, from: b.from ?? '+15017122661',
      call_length: call.callLength, completed: call.completed, queue_status: call.status, status: call.status,
      inbound: false, created_at: call.createdAt, started_at: call.startedAt, end_at: call.endAt,
      max_duration: b.max_duration ?? 30, error_message: null, answered_by: call.answeredBy, record: Boolean(b.record),
      recording_url: b.record && call.completed ? `https://fake.bland.ai/recordings/${call.id}.mp3` : null,
      metadata: b.metadata ?? null, request_data: b.request_data ?? null,
      variables: { to: b.phone_number, from: b.from ?? null, call_id: call.id },
      summary: call.summary, price: call.completed ? 0.068 : null, local_dialing: false, call_ended_by: call.endedBy,
      transferred_to: null, pathway_logs: null, analysis_schema: b.analysis_schema ?? null, analysis: call.analysis,
      concatenated_transcript: call.transcripts.map((t) => `${t.user}: ${t.text}`).join(' \n '),
      transcripts: call.transcripts,
    };
  }

  function create(req) {
    const err = authenticate(req);
    if (err) return err;
    let body;
    try {
      body = req.json();
    } catch {
      return blandError(400, 'Invalid JSON body.');
    }
    req.parsed = body;
    const errors = [];
    if (!body.phone_number) errors.push({ field: 'phone_number', message: 'phone_number is required' });
    if (!body.task && !body.pathway_id) errors.push({ field: 'task', message: 'Either task or pathway_id is required' });
    if (body.task && body.pathway_id) errors.push({ field: 'task', message: 'Send task or pathway_id, not both' });
    if (body.start_time !== undefined && parseBlandStartTime(body.start_time) === null) {
      errors.push({ field: 'start_time', message: 'start_time must be formatted YYYY-MM-DD HH:MM:SS -HH:MM' });
    }
    if (errors.length) return blandError(400, 'Invalid request.', errors);
    const id = randomUUID();
    const startMs = body.start_time === undefined ? null : parseBlandStartTime(body.start_time);
    calls.set(id, {
      id, body, startTimeMs: startMs, status: startMs !== null && startMs > Date.now() ? 'scheduled' : 'queued',
      completed: false, createdAt: new Date().toISOString(), startedAt: null, endAt: null, callLength: null,
      answeredBy: null, summary: null, endedBy: null, analysis: null, transcripts: [], stopped: false,
    });
    req.callId = id;
    return { status: 200, body: { status: 'success', message: 'Call successfully queued.', call_id: id, batch_id: null } };
  }

  function getCall(req) {
    const err = authenticate(req);
    if (err) return err;
    const call = calls.get(req.params.id);
    return call ? { status: 200, body: details(call) } : blandError(404, 'Call not found.');
  }

  function stop(req) {
    const err = authenticate(req);
    if (err) return err;
    const call = calls.get(req.params.id);
    req.callId = req.params.id;
    if (!call) return blandError(404, 'Call not found.');
    call.stopped = true;
    call.status = call.completed ? call.status : 'canceled';
    return { status: 200, body: { status: 'success', message: 'Call stopped successfully.' } };
  }

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: '/v1/calls', handler: create },
      { method: 'GET', path: /^\/v1\/calls\/(?<id>[^/]+)$/, handler: getCall },
      { method: 'POST', path: /^\/v1\/calls\/(?<id>[^/]+)\/stop$/, handler: stop },
    ],
  });

  return {
    /** Value for BLAND_API_URL. */
    url: http.url,
    port: http.port,
    /** Every request (recorded: apiKey, parsed body, callId). */
    requests: http.requests,
    /** Calls by id: {id, body, startTimeMs, status, completed, stopped, …}. */
    calls,
    /** Call-details object (§11.3) for a call, as GET /v1/calls/{id} and the webhook carry it. */
    details(callId) {
      return details(calls.get(callId));
    },
    /**
     * Marks a call completed (overrides: {call_length, summary, answered_by, transcripts, …}) and
     * POSTs the signed post-call webhook to its `webhook` URL (delivered `via` if set). Resolves to {status, text, body}.
     */
    async complete(callId, overrides = {}) {
      const call = calls.get(callId);
      if (!call?.body.webhook) throw new Error(`fake bland: call ${callId} has no webhook`);
      const now = Date.now();
      Object.assign(call, {
        completed: true, status: 'completed', startedAt: new Date(now - 45_000).toISOString(), endAt: new Date(now).toISOString(),
        callLength: 0.75, answeredBy: 'human', endedBy: 'ASSISTANT', summary: 'The customer confirmed the appointment.',
        transcripts: [
          { id: 1, created_at: new Date(now - 40_000).toISOString(), text: 'Hello?', user: 'user', c_id: callId },
          { id: 2, created_at: new Date(now - 38_000).toISOString(), text: call.body.first_sentence ?? 'Hi there!', user: 'assistant', c_id: callId },
        ],
      });
      const payload = { ...details(call), ...overrides };
      const target = via ? new URL(new URL(call.body.webhook).pathname + new URL(call.body.webhook).search, via).toString() : call.body.webhook;
      return sendBlandWebhook(target, webhookSecret ?? 'unset-secret', payload);
    },
    /** Answers the next `n` requests with HTTP `status` and Bland's error body. */
    failNext(n, status = 500) {
      http.failNext(n, blandError(status, status === 429 ? 'Rate limit exceeded.' : 'Internal server error.'));
    },
    waitFor: http.waitFor,
    close: http.close,
  };
}
