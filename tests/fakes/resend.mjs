// Fake Resend (docs/protocols.md §10, §1.2) plus Standard Webhooks / Svix signing and verification
// (docs/protocols.md §1.2, §3). POST /emails with `Authorization: Bearer re_…` answers `{id}`; an
// `Idempotency-Key` replays the same id for the same payload and 409s for a different one.
// The verifier is written from the spec, independently of the worker's Rust code.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { startStreamingHttp } from './stream-http.mjs';

/** Resend's error response: `{statusCode, message, name}`. */
export function resendError(status, name, message, headers = {}) {
  return { status, headers, body: { statusCode: status, message, name } };
}

/** JSON with object keys sorted (payload identity for idempotency, whatever the key order). */
const canonical = (v) =>
  Array.isArray(v) ? `[${v.map(canonical).join(',')}]`
    : v && typeof v === 'object' ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
      : JSON.stringify(v);

/**
 * Starts the fake. Options: `apiKey` (if set, only this key is accepted; otherwise any `re_…` key).
 */
export async function startFakeResend({ apiKey } = {}) {
  const emails = [];
  const idempotency = new Map(); // key -> {hash, id, inFlight}
  let delayMs = 0;

  async function send(req) {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return resendError(401, 'missing_api_key', 'Missing API key in the authorization header. Include the following header in the request: Authorization: Bearer YOUR_API_KEY');
    if (!m[1].startsWith('re_') || (apiKey !== undefined && m[1] !== apiKey)) return resendError(403, 'invalid_api_key', 'API key is invalid');
    let body;
    try {
      body = req.json();
    } catch {
      return resendError(400, 'validation_error', 'Invalid JSON body.');
    }
    req.parsed = body;
    for (const field of ['from', 'to', 'subject']) {
      if (body[field] === undefined || body[field] === '') return resendError(422, 'missing_required_field', `Missing \`${field}\` field.`);
    }
    if ([].concat(body.to).length > 50) return resendError(422, 'validation_error', 'Too many recipients. Max is 50.');
    for (const a of body.attachments ?? []) {
      if (!a.filename || (a.content === undefined && a.path === undefined)) return resendError(422, 'invalid_attachment', 'Attachment must have a filename and content or path.');
      if (a.content !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(a.content)) return resendError(422, 'invalid_attachment', 'Attachment content must be base64.');
    }

    const key = req.headers['idempotency-key'];
    req.idempotencyKey = key ?? null;
    const hash = createHash('sha256').update(canonical(body)).digest('hex');
    if (key !== undefined) {
      if (key.length < 1 || key.length > 256) return resendError(400, 'invalid_idempotency_key', 'The key must be between 1-256 chars.');
      const seen = idempotency.get(key);
      if (seen && seen.hash !== hash) return resendError(409, 'invalid_idempotent_request', 'Same idempotency key used with a different request payload. Change your idempotency key or payload.');
      if (seen?.inFlight) return resendError(409, 'concurrent_idempotent_requests', 'Same idempotency key used while original request is still in progress. Try the request again later.');
      if (seen) {
        req.replayed = true;
        return { status: 200, body: { id: seen.id } };
      }
    }
    const id = randomUUID();
    const entry = { hash, id, inFlight: true };
    if (key !== undefined) idempotency.set(key, entry);
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    entry.inFlight = false;
    emails.push({ id, idempotencyKey: key ?? null, body, headers: req.headers, at: Date.now() });
    req.emailId = id;
    return { status: 200, body: { id } };
  }

  const http = await startStreamingHttp({ routes: [{ method: 'POST', path: '/emails', handler: send }] });

  return {
    /** Value for RESEND_API_URL. */
    url: http.url,
    port: http.port,
    /** Every request (recorded: parsed body, idempotencyKey, emailId, replayed). */
    requests: http.requests,
    /** Accepted e-mails, one per id: {id, idempotencyKey, body, headers}. */
    emails,
    /** Answers the next `n` sends with 500 application_error or 429 rate_limit_exceeded (+ ratelimit headers). */
    failNext(n, status = 500) {
      const reply = status === 429
        ? resendError(429, 'rate_limit_exceeded', 'Too many requests. You can only make 2 requests per second.', { 'ratelimit-limit': '2', 'ratelimit-remaining': '0', 'ratelimit-reset': '1', 'retry-after': '1' })
        : resendError(status, 'application_error', 'An unexpected error occurred.');
      http.failNext(n, reply);
    },
    /** Delays every successful send by `ms` (a retry with the same key meanwhile gets 409 concurrent). */
    slow(ms) {
      delayMs = ms;
    },
    waitFor: http.waitFor,
    close: http.close,
  };
}

/** The decoded text of an e-mail's calendar attachment (`*.ics` or text/calendar); `email` is a recorded email or a send body. */
export function icsAttachment(email) {
  const body = email.body ?? email;
  const a = (body.attachments ?? []).find((x) => /\.ics$/i.test(x.filename ?? '') || /^text\/calendar/i.test(x.content_type ?? ''));
  if (!a) throw new Error('no .ics attachment');
  return Buffer.from(a.content, 'base64').toString('utf8');
}

/** Unfolds iCalendar text (RFC 5545 §3.1) into [{name, params, value}] content lines. */
export function icsProperties(text) {
  return text
    .replace(/\r\n[ \t]/g, '')
    .split('\r\n')
    .filter(Boolean)
    .map((line) => {
      let quoted = false;
      let colon = -1;
      for (let i = 0; i < line.length; i++) {
        if (line[i] === '"') quoted = !quoted;
        else if (line[i] === ':' && !quoted) {
          colon = i;
          break;
        }
      }
      const [name, ...rawParams] = line.slice(0, colon).split(/;(?=(?:[^"]*"[^"]*")*[^"]*$)/);
      const params = Object.fromEntries(rawParams.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
      return { name: name.toUpperCase(), params, value: line.slice(colon + 1) };
    });
}

// ---- Standard Webhooks / Svix --------------------------------------------------------------

/** The HMAC key of a `whsec_…` secret (prefix optional, standard base64); throws on an empty or malformed secret. */
export function standardWebhookKey(secret) {
  const b64 = String(secret ?? '').replace(/^whsec_/, '');
  if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new Error('standard webhooks: empty or malformed secret');
  }
  return Buffer.from(b64, 'base64');
}

/** `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` for one secret. */
export function standardWebhookSignature(secret, id, timestamp, body) {
  const mac = createHmac('sha256', standardWebhookKey(secret));
  mac.update(`${id}.${timestamp}.`);
  mac.update(Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8'));
  return `v1,${mac.digest('base64')}`;
}

/** Signing headers for `body`: {svix-id, svix-timestamp, svix-signature} (or `webhook-*` with prefix 'webhook'); several secrets → several signatures. */
export function signStandardWebhook(secrets, id, timestamp, body, { prefix = 'svix' } = {}) {
  const signature = [].concat(secrets).map((s) => standardWebhookSignature(s, id, timestamp, body)).join(' ');
  return { [`${prefix}-id`]: id, [`${prefix}-timestamp`]: String(timestamp), [`${prefix}-signature`]: signature };
}

/** Case-insensitive header lookup in a Headers instance or a plain object. */
export function headerValue(headers, name) {
  if (typeof headers?.get === 'function') return headers.get(name) ?? undefined;
  const key = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : [].concat(headers[key])[0];
}

/**
 * Verifies a Standard Webhooks (`webhook-*`) or Svix (`svix-*`) request against any of `secrets`.
 * Returns {ok: true, id, timestamp} or {ok: false, reason}; throws if a secret is empty/malformed.
 */
export function verifyStandardWebhook(secrets, headers, body, toleranceSec = 300, nowSec = Math.floor(Date.now() / 1000)) {
  const keys = [].concat(secrets).filter((s) => s !== undefined && s !== null);
  if (keys.length === 0) throw new Error('standard webhooks: no secret configured');
  for (const s of keys) standardWebhookKey(s);
  const get = (n) => headerValue(headers, `webhook-${n}`) ?? headerValue(headers, `svix-${n}`);
  const id = get('id');
  const ts = get('timestamp');
  const sig = get('signature');
  if (!id || !ts || !sig) return { ok: false, reason: 'missing header' };
  if (!/^\d+$/.test(ts)) return { ok: false, reason: 'invalid timestamp' };
  const timestamp = Number(ts);
  if (nowSec - timestamp > toleranceSec) return { ok: false, reason: 'timestamp too old' };
  if (timestamp - nowSec > toleranceSec) return { ok: false, reason: 'timestamp too new' };
  const expected = keys.map((s) => Buffer.from(standardWebhookSignature(s, id, ts, body).slice(3)));
  for (const entry of sig.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(entry.slice(comma + 1));
    if (expected.some((e) => e.length === given.length && timingSafeEqual(e, given))) return { ok: true, id, timestamp };
  }
  return { ok: false, reason: 'no matching signature' };
}

/** A Resend webhook event envelope {type, created_at, data} for an e-mail. */
export function resendEvent(type, { emailId = randomUUID(), from = 'Acme <bookings@acme.example>', to = ['jordan@example.com'], subject = 'Your appointment', ...extra } = {}) {
  const now = new Date();
  return {
    type,
    created_at: now.toISOString(),
    data: {
      created_at: now.toISOString().replace('T', ' ').replace('Z', '+00'),
      email_id: emailId,
      message_id: `<${randomBytes(8).toString('hex')}@email.amazonses.com>`,
      from, to, subject, ...extra,
    },
  };
}

/** POSTs `event` (object or raw string) to `url` signed like Resend (svix-* headers). Resolves to {status, text, sent: {id, timestamp, body, headers}}. */
export async function sendResendWebhook(url, secret, event, { id = `msg_${randomBytes(12).toString('base64url')}`, timestamp = Math.floor(Date.now() / 1000), prefix = 'svix' } = {}) {
  const body = typeof event === 'string' ? event : JSON.stringify(event);
  const headers = { 'content-type': 'application/json', ...signStandardWebhook(secret, id, timestamp, body, { prefix }) };
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, text: await res.text(), sent: { id, timestamp, body, headers } };
}
