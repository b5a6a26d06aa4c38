// A fake customer endpoint that receives the worker's forwarded webhooks (docs/protocols.md §3):
// records each delivery, checks its Standard Webhooks signature with the endpoint secret, and
// fails, throttles or stalls on command to exercise the worker's retry policy.

import { startStreamingHttp, sleep } from './stream-http.mjs';
import { verifyStandardWebhook } from './resend.mjs';

/**
 * Starts the target. Options: `secret` (or a list; may also be set later with setSecret, e.g.
 * from the `secret` POST /api/v1/endpoints returns), `toleranceSec` (default 300),
 * `rejectInvalid` (answer 401 to badly signed deliveries; default false: record and accept).
 */
export async function startFakeTarget({ secret, toleranceSec = 300, rejectInvalid = false } = {}) {
  let secrets = secret;
  const deliveries = [];
  const oneOff = []; // {status, headers, body}
  let sticky = null;
  let delayMs = 0;

  async function receive(req) {
    let verification = null;
    if (secrets !== undefined) {
      try {
        verification = verifyStandardWebhook(secrets, req.headers, req.rawBody, toleranceSec);
      } catch (e) {
        verification = { ok: false, reason: e.message };
      }
    }
    let json = null;
    try {
      json = JSON.parse(req.body);
    } catch {
      json = null;
    }
    const reply = oneOff.shift() ?? sticky ?? (rejectInvalid && verification && !verification.ok ? { status: 401, body: { error: 'bad signature' } } : { status: 200, body: { ok: true } });
    const delivery = {
      path: req.path, headers: req.headers, body: req.body, json, at: req.at,
      id: req.headers['webhook-id'] ?? null, timestamp: req.headers['webhook-timestamp'] ?? null,
      verified: verification?.ok ?? null, verification, status: reply.status ?? 200, request: req,
    };
    deliveries.push(delivery);
    if (delayMs && !(await sleep(delayMs, req.signal))) return { destroy: true };
    return reply;
  }

  const http = await startStreamingHttp({
    routes: ['POST', 'PUT'].map((method) => ({ method, path: /^\/.*$/, handler: receive })),
  });

  return {
    /** The endpoint URL to register with the worker (any path under it works too). */
    url: `${http.url}/hook`,
    origin: http.url,
    port: http.port,
    /** Deliveries: {headers, body, json, id (webhook-id), timestamp, verified (true|false|null without secret), verification, status answered, at}. */
    deliveries,
    /** Sets the endpoint secret(s) used to verify signatures from now on. */
    setSecret(s) {
      secrets = s;
    },
    /** The next `n` deliveries get HTTP `status` (default 500). */
    failNext(n, status = 500, { headers = {}, body = { error: 'scripted failure' } } = {}) {
      for (let i = 0; i < n; i++) oneOff.push({ status, headers, body });
    },
    /** Every delivery from now on gets `status` (e.g. 410, or 429 with {headers: {'retry-after': '1'}}), until reset(). */
    respondWith(status, { headers = {}, body = status < 300 ? { ok: true } : { error: `status ${status}` } } = {}) {
      sticky = { status, headers, body };
    },
    /** Waits `ms` before answering each delivery (to trip the worker's timeout). */
    slow(ms) {
      delayMs = ms;
    },
    /** Back to answering 200 at once (clears failNext, respondWith and slow). */
    reset() {
      oneOff.length = 0;
      sticky = null;
      delayMs = 0;
    },
    /** Resolves once `predicate(deliveries)` holds; e.g. waitFor((d) => d.length >= 3). */
    waitFor(predicate, timeout) {
      return http.waitFor(() => predicate(deliveries), timeout);
    },
    close: http.close,
  };
}
