// Security of ingest (issue 10, items 3, 4, 5, 7, 8), each attack performed from outside as an
// attacker would: signature-header CPU amplification, unbounded request and response bodies,
// unsigned `?call_id=` moving other tenants' calls, and Twilio replays with fresh idempotency
// tokens. Real workerd + local D1; providers and targets are fakes at the network boundary.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { startWorker, eventually, TEST_VARS, signedCallbackQuery } from './harness.mjs';
import { signStandardWebhook } from './fakes/resend.mjs';
import { sendStatusCallback, twilioCallParams, twilioSid, startFakeTwilio } from './fakes/twilio.mjs';
import { sendBlandWebhook } from './fakes/bland.mjs';
import { sendRetellWebhook } from './fakes/media-clients.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import { workerdDirectUrl } from '../bench/live.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const STANDARD_SECRETS = [TEST_VARS.STANDARD_WEBHOOK_SECRET,
  ...Array.from({ length: 4 }, () => `whsec_${randomBytes(24).toString('base64')}`)];

let worker;
let twilio;
let hugeResend;
let target;
let agent;

const uniqueId = (prefix) => `${prefix}_${randomBytes(8).toString('hex')}`;
const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();

/** The worker's /health: status and the Wasm instance id (a crash or reset changes it). */
async function health() {
  const res = await worker.fetch('/health');
  const body = await res.json();
  return { status: res.status, instance: body.instance?.id };
}

/** Asserts the JSON error shape every refusal must have. */
function assertError(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json?.error?.code, code, res.text);
  assert.ok(res.json.error.message, 'error message');
  assert.ok(res.json.error.request_id, 'request id');
}

/**
 * POSTs to the worker with node's http client so the body can be streamed: `total` bytes in
 * 64 KiB chunks (chunked transfer encoding unless `contentLength` is given), stopping as soon as
 * the worker answers. Resolves to {status, json, text, sent}: `sent` is how much of the body
 * the worker let us push before it answered.
 */
function postStreaming(pathname, { total, contentLength, headers = {}, timeoutMs = 120_000 }) {
  return new Promise((resolve, reject) => {
    const url = new URL(pathname, worker.url);
    const framing = contentLength === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(contentLength) };
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers: { ...framing, ...headers } });
    const chunk = Buffer.alloc(64 * KiB, 0x61);
    let sent = 0;
    let answered = false;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer after ${timeoutMs} ms with ${sent} bytes sent: the worker waited for the body`));
    }, timeoutMs);
    req.on('response', (res) => {
      answered = true;
      const sentBeforeAnswer = sent;
      const parts = [];
      const finish = () => {
        clearTimeout(timer);
        const text = Buffer.concat(parts).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { json = null; }
        req.destroy();
        resolve({ status: res.statusCode, text, json, sent: sentBeforeAnswer });
      };
      res.on('data', (d) => parts.push(d));
      // The worker closes the connection after refusing (the rest of the body is unread).
      res.on('end', finish);
      res.on('aborted', finish);
      res.on('error', finish);
    });
    // Once the worker has answered (and dropped the body), write errors are expected.
    // A reset before the answer arrived (the refusal raced our writes) is reported, not thrown:
    // the caller asks the worker's log what it answered.
    req.on('error', (e) => {
      if (answered) return;
      clearTimeout(timer);
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') resolve({ status: 0, text: e.code, json: null, sent, reset: true });
      else reject(e);
    });
    // One chunk per event-loop turn, so an early answer is read before the next write.
    const pump = () => {
      if (answered) return;
      if (sent >= total) {
          req.end();
        return;
      }
      sent += chunk.length;
      if (req.write(chunk)) setImmediate(pump);
      else req.once('drain', () => setImmediate(pump));
    };
    pump();
  });
}

/**
 * [`postStreaming`] through wrangler dev's local ProxyWorker, which sits in front of the worker
 * in tests only: when the worker refuses a body mid-upload, the proxy's own upload may fail
 * first and it answers 503 "Your worker restarted mid-request" instead of relaying the 413.
 * Then the worker's own request log decides (it records the 413 the worker sent); without a
 * logged 413 that answer (and only that one) is retried. Production has no such proxy.
 */
async function postRefused(pathname, options) {
  for (let i = 0; ; i += 1) {
    const refusedBefore = refusedInLog(pathname);
    const res = await postStreaming(pathname, options);
    const lost = res.reset || (res.status === 503 && /restarted mid-request/.test(res.text));
    if (!lost) return res;
    // The answer was lost on the way, but the worker's own request log says what it answered.
    if (await eventually(() => refusedInLog(pathname) > refusedBefore, { timeout: 2_000 }).catch(() => false)) {
      console.log(`# ${pathname}: the answer was lost (${res.reset ? res.text : 'dev proxy 503'}); the worker's log shows its 413`);
      return { ...res, status: 413, json: null };
    }
    if (i === 4) return res;
    console.log(`# ${pathname}: wrangler dev proxy artifact (503 "restarted mid-request"), retrying`);
    await new Promise((r) => setTimeout(r, 200 * (i + 1)));
  }
}

/** How many 413s the worker has logged for `pathname` (its one JSON line per request). */
function refusedInLog(pathname) {
  return worker.logs().filter((l) => l.msg === 'request' && l.path === pathname && l.status === 413).length;
}

/** POSTs `body` whole (with its Content-Length); retries only the dev-proxy artifact. */
async function sendWhole(pathname, body, headers) {
  for (let i = 0; ; i += 1) {
    const res = await worker.fetch(pathname, { method: 'POST', headers, body });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    if (!(res.status === 503 && /restarted mid-request/.test(text)) || i === 4) return { status: res.status, text, json };
    await new Promise((r) => setTimeout(r, 200 * (i + 1)));
  }
}

/**
 * An HTTP server answering every request 200 with `total` bytes streamed (after `prefix`) as
 * fast as the client reads them; records how much it wrote before the client went away.
 */
async function startHugeResponder({ total = 200 * MiB, prefix = '', contentType = 'text/plain' } = {}) {
  const state = { requests: [], written: 0, finished: 0, cutOff: 0 };
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      state.requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(parts).toString('utf8') });
      res.writeHead(200, { 'content-type': contentType });
      const chunk = Buffer.alloc(64 * KiB, 0x20);
      let written = 0;
      res.on('close', () => { if (!res.writableFinished) state.cutOff += 1; });
      if (prefix) { res.write(prefix); written += prefix.length; }
      const pump = () => {
        while (written < total) {
          if (res.destroyed) return;
          written += chunk.length;
          state.written += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
        state.finished += 1;
      };
      pump();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url, state, total,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  hugeResend = await startHugeResponder({ prefix: '{"id":"re_huge_reply"}', contentType: 'application/json' });
  target = await startFakeTarget();
  worker = await startWorker({
    vars: {
      STANDARD_WEBHOOK_SECRET: STANDARD_SECRETS.join(' '),
      TWILIO_API_URL: twilio.url,
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      RESEND_API_URL: hugeResend.url,
      RESEND_API_KEY: 're_test_key',
      EMAIL_FROM: 'Acme Calls <calls@acme.example>',
      DEFAULT_FROM_NUMBER: '+15017122661',
    },
  });
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Retrying', system_prompt: 'You confirm appointments.', retry: { max_retries: 2, spacing_seconds: 10 },
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
  const endpoint = await worker.api('POST', '/api/v1/endpoints', { url: target.url });
  assert.equal(endpoint.status, 201, endpoint.text);
  target.setSecret(endpoint.body.secret);
});

after(async () => {
  await worker?.stop();
  await Promise.all([twilio?.close(), hugeResend?.close(), target?.close()]);
});

// ---- 3. CPU amplification through signature headers ---------------------------------------------

/** A Standard Webhooks request to /webhooks/standard with `signature` as its header. */
function standardRequest(signature, { size = 256 * KiB - 1, id = uniqueId('msg') } = {}) {
  const head = '{"type":"invoice.paid","data":{"pad":"';
  const tail = '"}}';
  const body = head + 'a'.repeat(size - head.length - tail.length) + tail;
  assert.equal(Buffer.byteLength(body), size);
  const timestamp = Math.floor(Date.now() / 1000);
  return { id, timestamp, body, headers: { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(timestamp), 'svix-signature': signature } };
}

async function sendStandard(req) {
  const res = await worker.fetch('/webhooks/standard', { method: 'POST', headers: req.headers, body: req.body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: res.status, text, json };
}

test('3,000 `v1,AA==` signature entries on a 256 KiB body are refused 401 at once, and /health stays up', async () => {
  const before = await health();
  assert.equal(before.status, 200);
  const attack = vector(3000, 'v1,AA==').join(' ');
  const one = await sendStandard(standardRequest(attack));
  assertError(one, 401, 'invalid_signature');

  // A batch of them while /health is polled: every attack refused, every health check answered.
  const started = Date.now();
  const healthLatencies = [];
  let attacking = true;
  const poller = (async () => {
    const statuses = [];
    while (attacking) {
      const t = Date.now();
      statuses.push((await health()).status);
      healthLatencies.push(Date.now() - t);
    }
    return statuses;
  })();
  const results = await Promise.all(Array.from({ length: 6 }, () => sendStandard(standardRequest(attack))));
  const batchMs = Date.now() - started;
  attacking = false;
  const healthStatuses = await poller;
  for (const res of results) assertError(res, 401, 'invalid_signature');
  assert.ok(healthStatuses.length >= 1 && healthStatuses.every((s) => s === 200), `health: ${healthStatuses}`);
  console.log(`# 6 attack requests (5 secrets, 3,000 entries, 256 KiB) refused in ${batchMs} ms; ` +
    `/health max ${Math.max(...healthLatencies)} ms over ${healthLatencies.length} polls`);

  // More than 10 entries is refused even when one of them is valid; 10 with a valid one pass.
  const valid = standardRequest('');
  const good = signStandardWebhook(STANDARD_SECRETS[2], valid.id, valid.timestamp, valid.body)['svix-signature'];
  const eleven = await sendStandard({ ...valid, headers: { ...valid.headers, 'svix-signature': [...vector(10, 'v1,AA=='), good].join(' ') } });
  assertError(eleven, 401, 'invalid_signature');
  const ten = await sendStandard({ ...valid, headers: { ...valid.headers, 'svix-signature': [...vector(9, 'v1,AA=='), good].join(' ') } });
  assert.equal(ten.status, 200, ten.text);
  assert.equal(ten.json.duplicate, false);
  assert.equal((await health()).instance, before.instance, 'the worker was not reset');
});

function vector(n, value) {
  return Array.from({ length: n }, () => value);
}

test('every other verifier refuses an oversized signature header before computing anything', async () => {
  const big = 'a'.repeat(4 * KiB);
  const body = JSON.stringify({ call_id: 'x', status: 'completed' });
  for (const [path, headers] of [
    ['/webhooks/bland', { 'x-webhook-signature': big }],
    ['/webhooks/retell', { 'x-retell-signature': `v=${Date.now()},d=${big}` }],
    ['/webhooks/vapi', { 'x-vapi-secret': big }],
    ['/webhooks/twilio', { 'x-twilio-signature': big }],
    ['/webhooks/telnyx', { 'telnyx-signature-ed25519': big, 'telnyx-timestamp': String(Math.floor(Date.now() / 1000)) }],
  ]) {
    const res = await worker.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const text = await res.text();
    assertError({ status: res.status, text, json: JSON.parse(text) }, 401, 'invalid_signature');
  }
});

// ---- 4. Unbounded request bodies -------------------------------------------------------------------

test('chunked bodies of many MiB are refused 413 on every body-reading route, without being read', async () => {
  const { instance } = await health();
  const total = 96 * MiB;
  const routes = [
    ['/webhooks/standard', { 'content-type': 'application/json' }, 256 * KiB],
    ['/voice/twilio/status', { 'content-type': 'application/x-www-form-urlencoded' }, 256 * KiB],
    ['/voice/twilio/incoming', { 'content-type': 'application/x-www-form-urlencoded' }, 256 * KiB],
    ['/api/v1/endpoints', { 'content-type': 'application/json', authorization: `Bearer ${TEST_VARS.ADMIN_API_KEY}` }, 64 * KiB],
  ];
  for (const [path, headers, limit] of routes) {
    const res = await postRefused(path, { total, headers });
    assert.equal(res.status, 413, res.text);
    // The worker answers and drops the connection mid-upload; the small JSON body can be lost to
    // that reset on the client side, so its shape is asserted below on a complete request.
    if (res.json) assert.equal(res.json.error.code, 'payload_too_large');
    console.log(`# ${path}: 413 after ${(res.sent / MiB).toFixed(1)} MiB of ${total / MiB} MiB sent`);
    assert.ok(res.sent < total / 3, `${path}: the worker read ${res.sent} bytes before refusing`);
    // One byte over the limit (declared and sent whole): the full JSON error.
    const over = await sendWhole(path, Buffer.alloc(limit + 1, 0x61), headers);
    assertError(over, 413, 'payload_too_large');
  }
  const after = await health();
  assert.equal(after.status, 200);
  assert.equal(after.instance, instance, 'the worker was not reset');
  // Normal requests right after still work.
  const created = await worker.api('POST', '/api/v1/endpoints', { url: `${target.origin}/after-413` });
  assert.equal(created.status, 201, created.text);
  assert.equal((await worker.api('DELETE', `/api/v1/endpoints/${created.body.id}`)).status, 200);
  const sid = twilioSid('CA');
  const cb = await sendStatusCallback(`${worker.url}/voice/twilio/status`, TEST_VARS.TWILIO_AUTH_TOKEN,
    twilioCallParams({ callSid: sid, status: 'ringing', SequenceNumber: '0' }));
  assert.equal(cb.status, 200, cb.text);
  // The limits themselves: exactly 64 KiB of JSON is read (and judged), one byte more is not.
  const pad = (n) => JSON.stringify({ url: `${target.origin}/x`, description: 'd'.repeat(n) });
  const base = Buffer.byteLength(pad(0));
  const auth = { 'content-type': 'application/json', authorization: `Bearer ${TEST_VARS.ADMIN_API_KEY}` };
  const atLimit = await worker.fetch('/api/v1/endpoints', { method: 'POST', headers: auth, body: pad(64 * KiB - base) });
  assert.notEqual(atLimit.status, 413, 'exactly the limit is read');
  const justOver = await sendWhole('/api/v1/endpoints', pad(64 * KiB - base + 1), auth);
  assertError(justOver, 413, 'payload_too_large');
});

/**
 * Sends a body with chunked framing that also declares `Content-Length: declared` (framing an
 * HTTP client would not choose: chunked wins, so the body may run far past the declared length),
 * over a raw socket to `base`, `total` bytes in 64 KiB chunks, stopping at the first byte of an
 * answer or when the connection ends. Resolves to {sent, answer}: how much the worker let us push.
 */
function postChunkedDeclaring(base, pathname, { declared, total, headers = {}, timeoutMs = 30_000 }) {
  return new Promise((resolve) => {
    const url = new URL(pathname, base);
    const socket = net.connect(Number(url.port), url.hostname);
    let sent = 0;
    let answer = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ sent, answer: answer.slice(0, 300) });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d) => { answer += d.toString(); finish(); });
    socket.on('close', finish);
    socket.on('error', finish);
    const head = Object.entries({ 'content-type': 'application/json', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n${head}content-length: ${declared}\r\ntransfer-encoding: chunked\r\n\r\n`);
    const chunk = Buffer.concat([Buffer.from(`${(64 * KiB).toString(16)}\r\n`), Buffer.alloc(64 * KiB, 0x61), Buffer.from('\r\n')]);
    // One chunk per event-loop turn, so an early answer is seen before the next write; the
    // body is never terminated, so a worker that waits for all of it never answers.
    const pump = () => {
      if (done || sent >= total) return;
      sent += 64 * KiB;
      if (socket.write(chunk)) setImmediate(pump);
      else socket.once('drain', () => setImmediate(pump));
    };
    pump();
  });
}

/**
 * [`postChunkedDeclaring`] until the worker's log shows its 413: a connection dropped before
 * the whole body was sent with no 413 logged is wrangler's proxy losing the upload (as in
 * [`postRefused`]) and is retried; a worker that waits for the whole body is not. Resolves to
 * {sent, refused}.
 */
async function refusedChunkedDeclaring(base, pathname, options) {
  for (let i = 0; ; i += 1) {
    const refusedBefore = refusedInLog(pathname);
    const res = await postChunkedDeclaring(base, pathname, options);
    if (await eventually(() => refusedInLog(pathname) > refusedBefore, { timeout: 5_000 }).catch(() => false)) return { ...res, refused: true };
    if (res.sent >= options.total || i === 4) return { ...res, refused: false };
    console.log(`# ${base}${pathname}: dropped after ${res.sent} bytes with no 413 logged (dev proxy), retrying`);
    await new Promise((r) => setTimeout(r, 200 * (i + 1)));
  }
}

test('a chunked body that declares a small Content-Length is still read bounded: 413 without being read', async () => {
  // A declared length within the limit lets the worker read a body in one piece; chunked framing
  // beside it must not, or the declared length would no longer bound what is held. Sent through
  // wrangler's local proxy and straight to workerd's own socket: the proxy re-frames the body
  // (the worker sees no Content-Length), workerd passes both headers to the worker as sent, so
  // only the direct request shows a worker that trusts the declared length (it then waits for
  // the whole body and never answers).
  const { instance } = await health();
  const direct = await workerdDirectUrl(worker);
  assert.ok(direct, "workerd's own entry socket");
  const total = 64 * MiB;
  for (const base of [worker.url, direct]) {
    for (const pathname of ['/webhooks/standard', '/webhooks/resend']) {
      // The answer can be lost to the reset of a refused upload; the worker's own log decides.
      const res = await refusedChunkedDeclaring(base, pathname, { declared: 10, total });
      assert.ok(res.refused, `${base}${pathname}: no 413 logged (${JSON.stringify(res)})`);
      console.log(`# ${base}${pathname}: 413 after ${(res.sent / MiB).toFixed(1)} MiB of ${total / MiB} MiB sent`);
      assert.ok(res.sent < total / 3, `${base}${pathname}: the worker read ${res.sent} bytes before refusing`);
    }
  }
  const after = await health();
  assert.equal(after.status, 200);
  assert.equal(after.instance, instance, 'the worker was not reset');
});

// ---- 5. Unbounded response bodies ------------------------------------------------------------------

test('a target answering 200 with a 200 MiB body: delivery succeeded with a bounded excerpt, stream cut off', async () => {
  const huge = await startHugeResponder({ total: 200 * MiB });
  try {
    const { instance } = await health();
    const endpoint = await worker.api('POST', '/api/v1/endpoints', { url: `${huge.url}/hook`, event_types: ['huge.test'] });
    assert.equal(endpoint.status, 201, endpoint.text);
    const req = standardRequest('', { size: 200 });
    const body = JSON.stringify({ type: 'huge.test', data: { n: 1 } });
    const sent = await sendStandard({ body, headers: { ...req.headers, ...signStandardWebhook(STANDARD_SECRETS[0], req.id, req.timestamp, body) } });
    assert.equal(sent.status, 200, sent.text);
    const eventId = sent.json.id;
    const delivery = await eventually(async () => {
      const list = await worker.api('GET', `/api/v1/deliveries?event_id=${eventId}&endpoint_id=${endpoint.body.id}`);
      const d = list.body.data?.[0];
      return d && d.status !== 'pending' && d;
    }, { timeout: 60_000, message: 'delivery attempted' });
    const detail = await worker.api('GET', `/api/v1/deliveries/${delivery.id}`);
    assert.equal(detail.body.status, 'succeeded', detail.text);
    const [attempt] = detail.body.attempt_log;
    assert.equal(attempt.status_code, 200);
    assert.ok(attempt.response.length > 0 && attempt.response.length <= 1024, `excerpt of ${attempt.response.length}`);
    await eventually(() => huge.state.cutOff + huge.state.finished >= 1, { timeout: 30_000, message: 'response closed' });
    console.log(`# target wrote ${(huge.state.written / MiB).toFixed(1)} MiB of 200 MiB before the worker cancelled`);
    assert.equal(huge.state.finished, 0, 'the worker read the whole 200 MiB');
    assert.ok(huge.state.written < huge.total / 4, `target wrote ${huge.state.written} bytes`);
    const after = await health();
    assert.equal(after.status, 200);
    assert.equal(after.instance, instance, 'the worker was not reset');
    await worker.api('DELETE', `/api/v1/endpoints/${endpoint.body.id}`);
  } finally {
    await huge.close();
  }
});

test('Resend answering 200 with a 200 MiB body: the email is recorded sent, the stream cut off', async () => {
  const { instance } = await health();
  const email = `${uniqueId('huge')}@example.com`;
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675310', agent_id: agent.id, start_at: inSeconds(86_400), contact: { name: 'Sam', email },
  });
  assert.equal(res.status, 201, res.text);
  const call = await eventually(async () => {
    const c = (await worker.api('GET', `/api/v1/calls/${res.body.id}`)).body;
    return c.email?.status && c.email.status !== 'pending' && c;
  }, { timeout: 60_000, message: 'confirmation email attempted' });
  assert.equal(call.email.status, 'sent', JSON.stringify(call.email));
  assert.equal(call.email.resend_id, 're_huge_reply');
  assert.ok(hugeResend.state.requests.some((r) => r.body.includes(email)), 'Resend got the email');
  await eventually(() => hugeResend.state.cutOff + hugeResend.state.finished >= 1, { timeout: 30_000, message: 'response closed' });
  console.log(`# Resend fake wrote ${(hugeResend.state.written / MiB).toFixed(1)} MiB of 200 MiB before the worker cancelled`);
  assert.equal(hugeResend.state.finished, 0, 'the worker read the whole 200 MiB');
  assert.ok(hugeResend.state.written < hugeResend.total / 4, `Resend fake wrote ${hugeResend.state.written} bytes`);
  assert.equal((await health()).instance, instance, 'the worker was not reset');
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${res.body.id}`)).status, 200);
});

// ---- 7. Unsigned ?call_id= ------------------------------------------------------------------------

/** Another tenant with a Twilio call of its own, `queued` and dialled by us (attempt 1). */
async function otherTenantCall() {
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: uniqueId('victim') });
  assert.equal(tenant.status, 201, tenant.text);
  const key = tenant.body.api_key.key;
  const victimAgent = await worker.api('POST', '/api/v1/agents', {
    name: 'Victim', system_prompt: 'Hello.', retry: { max_retries: 2, spacing_seconds: 10 },
  }, { key });
  assert.equal(victimAgent.status, 201, victimAgent.text);
  const id = uniqueId('call');
  const now = Date.now();
  await worker.d1(`INSERT INTO calls (id, tenant_id, agent_id, direction, provider, provider_call_id, status, to_number,
      from_number, start_at, base_url, created_at, updated_at)
    VALUES ('${id}', '${tenant.body.id}', '${victimAgent.body.id}', 'outbound', 'twilio', '${twilioSid('CA')}', 'queued',
      '+15558675399', '+15017122661', ${now}, '${worker.url}', ${now}, ${now})`);
  return { id, key };
}

async function callState(id) {
  const [row] = await worker.d1(`SELECT status, attempt, provider_call_id FROM calls WHERE id = '${id}'`);
  const [{ n }] = await worker.d1(`SELECT count(*) AS n FROM call_events WHERE call_id = '${id}'`);
  return { ...row, history: n };
}

const dialsTo = (number) => twilio.createRequests.filter((r) => r.fields?.To === number);

test('a signed Bland body replayed with ?call_id=<another tenant\'s call> moves nothing and redials nobody', async () => {
  const victim = await otherTenantCall();
  const before = await callState(victim.id);
  const payload = { call_id: uniqueId('bland'), status: 'no-answer', completed: true, to: '+15558675311', from: '+15017122661' };
  // The body as Bland sent it (signed with our Bland secret), first to its own URL.
  const first = await sendBlandWebhook(`${worker.url}/webhooks/bland`, TEST_VARS.BLAND_WEBHOOK_SECRET, payload);
  assert.equal(first.status, 200, first.text);
  assert.equal(JSON.parse(first.text).duplicate, false);
  // Replayed (answered duplicate) and re-sent as a fresh body, each naming the victim's call.
  const replay = await sendBlandWebhook(`${worker.url}/webhooks/bland?call_id=${victim.id}&attempt=1`, TEST_VARS.BLAND_WEBHOOK_SECRET, payload);
  assert.equal(replay.status, 200, replay.text);
  assert.equal(JSON.parse(replay.text).duplicate, true);
  const fresh = { ...payload, call_id: uniqueId('bland') };
  const forged = await sendBlandWebhook(`${worker.url}/webhooks/bland?call_id=${victim.id}&attempt=1`, TEST_VARS.BLAND_WEBHOOK_SECRET, fresh);
  assert.equal(forged.status, 200, forged.text);
  const stored = JSON.parse(forged.text);
  assert.equal(stored.duplicate, false, 'the event itself is still stored');
  // A forged signature parameter does not help either.
  const fake = await sendBlandWebhook(`${worker.url}/webhooks/bland?call_id=${victim.id}&attempt=1&exp=9999999999&sig=AAAA`,
    TEST_VARS.BLAND_WEBHOOK_SECRET, { ...payload, call_id: uniqueId('bland') });
  assert.equal(fake.status, 200, fake.text);

  // Give a wrongly scheduled retry (10 s spacing) the time to dial.
  await new Promise((r) => setTimeout(r, 12_000));
  await worker.scheduled();
  await new Promise((r) => setTimeout(r, 1_000));
  assert.deepEqual(await callState(victim.id), before, 'the other tenant\'s call is unchanged');
  assert.equal(dialsTo('+15558675399').length, 0, 'no redial at the carrier');
  // The event was kept, linked to no call and not shown to the victim's tenant.
  const event = await worker.api('GET', `/api/v1/events/${stored.id}`);
  assert.equal(event.status, 200, event.text);
  assert.equal(event.body.call_id ?? null, null);
  const theirs = await worker.api('GET', `/api/v1/events?call_id=${victim.id}`, undefined, { key: victim.key });
  assert.equal(theirs.body.data.length, 0);
});

test('a Retell dial_no_answer naming an inbound call (query and metadata) does not turn it into a retry', async () => {
  const id = uniqueId('call');
  const now = Date.now();
  await worker.d1(`INSERT INTO calls (id, tenant_id, agent_id, direction, provider, provider_call_id, status, to_number,
      from_number, created_at, updated_at)
    VALUES ('${id}', 'ten_default', '${agent.id}', 'inbound', 'twilio', '${twilioSid('CA')}', 'ringing',
      '+15550001111', '+15558675398', ${now}, ${now})`);
  const before = await callState(id);
  const payload = {
    event: 'call_ended',
    call: { call_id: uniqueId('retell'), call_status: 'ended', disconnection_reason: 'dial_no_answer', metadata: { call_id: id } },
  };
  const res = await sendRetellWebhook(`${worker.url}/webhooks/retell?call_id=${id}&attempt=1`, TEST_VARS.RETELL_API_KEY, payload);
  assert.equal(res.status, 200, res.text);
  assert.equal(JSON.parse(res.text).type, 'call.no_answer');
  await new Promise((r) => setTimeout(r, 12_000));
  await worker.scheduled();
  await new Promise((r) => setTimeout(r, 1_000));
  assert.deepEqual(await callState(id), before, 'the inbound call is unchanged');
  assert.equal(dialsTo('+15558675398').length + dialsTo('+15550001111').length, 0, 'no dial');
});

test('our own signed callback URLs still move calls; the same URL naming another call does not', async () => {
  const victim = await otherTenantCall();
  const victimBefore = await callState(victim.id);
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675312', agent_id: agent.id, start_at: inSeconds(2) });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  const create = await eventually(() => twilio.createRequests.find((r) => (r.fields?.StatusCallback ?? '').includes(`call_id=${id}`)),
    { timeout: 30_000, message: 'twilio create call' });
  const statusUrl = new URL(create.fields.StatusCallback);
  assert.equal(statusUrl.pathname, '/voice/twilio/status');
  const exp = Number(statusUrl.searchParams.get('exp'));
  assert.ok(exp > Date.now() / 1000, 'expires in the future');
  // The MAC is the documented one (computed here independently of the worker).
  assert.equal(statusUrl.search.slice(1), signedCallbackQuery(id, { attempt: 1, expires: exp }));
  assert.equal(new URL(create.fields.Url).search, statusUrl.search);

  for (const status of ['initiated', 'ringing']) {
    const cb = await twilio.sendStatus(create.callSid, status);
    assert.equal(cb.status, 200, cb.text);
  }
  await eventually(async () => (await callState(id)).status === 'ringing', { message: 'ringing' });

  // A carrier-signed request to our URL with the call id swapped (MAC kept) names nothing.
  const swapped = new URL(statusUrl);
  swapped.searchParams.set('call_id', victim.id);
  const cb = await sendStatusCallback(swapped.toString(), TEST_VARS.TWILIO_AUTH_TOKEN,
    twilioCallParams({ callSid: twilioSid('CA'), status: 'no-answer', direction: 'outbound-api', SequenceNumber: '0' }));
  assert.equal(cb.status, 200, cb.text);
  // An unsigned call_id on the incoming-call webhook does not hand out the victim's stream.
  const incoming = await sendStatusCallback(`${worker.url}/voice/twilio/incoming?call_id=${victim.id}`, TEST_VARS.TWILIO_AUTH_TOKEN,
    twilioCallParams({ callSid: twilioSid('CA'), status: 'in-progress', to: '+15558675399' }));
  assert.equal(incoming.status, 200, incoming.text);
  assert.ok(!incoming.text.includes(victim.id), 'no stream for the victim\'s call');
  assert.deepEqual(await callState(victim.id), victimBefore);
  const [stream] = await worker.d1(`SELECT stream_token FROM calls WHERE id = '${victim.id}'`);
  assert.equal(stream.stream_token, null);
});

// ---- 8. Twilio replays with a fresh I-Twilio-Idempotency-Token ------------------------------------

test('the same signed Twilio callback sent 4 times with 4 idempotency tokens is 1 event and 1 delivery', async () => {
  const callSid = twilioSid('CA');
  const params = twilioCallParams({ callSid, status: 'completed', direction: 'outbound-api', SequenceNumber: '3', CallDuration: '42' });
  const answers = [];
  for (let i = 0; i < 4; i += 1) {
    // sendStatusCallback sends a fresh random I-Twilio-Idempotency-Token each time.
    const res = await sendStatusCallback(`${worker.url}/voice/twilio/status`, TEST_VARS.TWILIO_AUTH_TOKEN, params,
      { headers: { 'i-twilio-idempotency-token': `${randomBytes(8).toString('hex')}-${i}` } });
    assert.equal(res.status, 200, res.text);
    answers.push(JSON.parse(res.text));
  }
  assert.deepEqual(answers.map((a) => a.duplicate), [false, true, true, true]);
  assert.equal(new Set(answers.map((a) => a.id)).size, 1);
  const events = await worker.api('GET', '/api/v1/events?provider=twilio&limit=100');
  const mine = events.body.data.filter((e) => e.payload?.data?.provider_call_id === callSid);
  assert.equal(mine.length, 1, 'one event');
  await eventually(() => target.deliveries.some((d) => d.json?.data?.provider_call_id === callSid), { message: 'delivered' });
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(target.deliveries.filter((d) => d.json?.data?.provider_call_id === callSid).length, 1, 'one delivery');
});
