// A fake HTTP server for providers that stream their answers (SSE, chunked audio) or share a
// port with a WebSocket endpoint. Like startFakeHttp (http.mjs) it records every request, but a
// reply can also be a streaming body, and each recorded request learns whether the client
// hung up before the response ended (`aborted`), which tests use to assert barge-in aborts.

import { createServer } from 'node:http';

/** Resolves after `ms` ms; resolves early (to false) if `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves once `signal` aborts (used to "stall" a response until the client gives up). */
export function untilAborted(signal) {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', resolve, { once: true })));
}

/** Parses a form body into an object; repeated names become arrays (e.g. StatusCallbackEvent). */
export function formToObject(text) {
  const out = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (k in out) out[k] = [].concat(out[k], v);
    else out[k] = v;
  }
  return out;
}

/**
 * Starts a fake HTTP server.
 * `routes` is a list of {method, path, handler}: `path` is an exact string or a RegExp whose named
 * groups land in `req.params`. `handler(req)` returns a reply:
 *   {status?, headers?, body?: string|Buffer|object, delayMs?, destroy?}  — a whole response, or
 *   {status?, headers?, stream: async (write, req) => void, destroyAtEnd?} — a streamed body:
 *     `write(chunk)` resolves to false once the client has gone; `req.signal` aborts then too.
 * Recorded requests carry `at` (Date.now()) and `hrAt` (performance.now()) of the body's end,
 * `aborted` (client hung up before the end), `finished`, `status`,
 * `bytesSent` and `serverClosed` (we cut the connection on purpose: `destroy`/`destroyAtEnd`).
 * `onUpgrade(req, socket, head)` receives WebSocket upgrade requests. Unmatched requests get 404.
 */
export async function startStreamingHttp({ routes = [], onUpgrade } = {}) {
  const requests = [];
  const queued = [];
  const waiters = [];
  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const url = new URL(req.url, 'http://fake');
      const body = Buffer.concat(chunks);
      const controller = new AbortController();
      const rec = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        search: url.search,
        headers: req.headers,
        rawBody: body,
        body: body.toString('utf8'),
        params: {},
        at: Date.now(),
        // Same clock as the Playback log, for latencies measured across fakes and clients.
        hrAt: performance.now(),
        status: null,
        bytesSent: 0,
        aborted: false,
        serverClosed: false,
        finished: false,
        signal: controller.signal,
        json() {
          return JSON.parse(this.body);
        },
        form() {
          return new URLSearchParams(this.body);
        },
      };
      res.on('close', () => {
        if (!res.writableFinished && !rec.serverClosed) {
          rec.aborted = true;
          controller.abort();
        }
        notify();
      });
      res.on('finish', () => {
        rec.finished = true;
        notify();
      });

      let reply;
      const route = routes.find((r) => {
        if (r.method !== req.method) return false;
        if (typeof r.path === 'string') return r.path === url.pathname;
        const m = r.path.exec(url.pathname);
        if (m) rec.params = { ...(m.groups ?? {}) };
        return Boolean(m);
      });
      rec.route = route ? `${route.method} ${route.path}` : null;
      requests.push(rec);
      notify();
      const q = queued.findIndex((e) => !e.match || e.match(rec));
      try {
        if (q >= 0) reply = queued.splice(q, 1)[0].reply;
        else if (route) reply = await route.handler(rec);
        else reply = { status: 404, body: { error: 'no such fake route', route: `${req.method} ${url.pathname}` } };
      } catch (e) {
        reply = { status: 500, body: { error: `fake handler threw: ${e.message}` } };
      }
      reply = reply ?? { status: 200 };
      if (reply.delayMs) await sleep(reply.delayMs, controller.signal);
      if (reply.destroy || controller.signal.aborted) {
        rec.serverClosed = Boolean(reply.destroy);
        req.socket.destroy();
        return;
      }
      rec.status = reply.status ?? 200;
      if (reply.stream) {
        res.writeHead(rec.status, reply.headers ?? {});
        res.flushHeaders();
        req.socket.setNoDelay(true);
        const write = async (chunk) => {
          if (controller.signal.aborted || res.destroyed) return false;
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          rec.bytesSent += buf.length;
          if (!res.write(buf)) {
            await new Promise((r) => {
              res.once('drain', r);
              controller.signal.addEventListener('abort', r, { once: true });
            });
          }
          return !controller.signal.aborted;
        };
        try {
          await reply.stream(write, rec);
        } catch (e) {
          rec.streamError = e.message;
          rec.serverClosed = true;
          req.socket.destroy();
        } finally {
          if (!controller.signal.aborted && !res.destroyed) {
            if (reply.destroyAtEnd) {
              rec.serverClosed = true;
              req.socket.destroy();
            }
            else res.end();
          }
        }
        return;
      }
      const isJson = reply.body !== undefined && typeof reply.body !== 'string' && !Buffer.isBuffer(reply.body);
      const payload = isJson ? JSON.stringify(reply.body) : (reply.body ?? '');
      rec.bytesSent = Buffer.byteLength(payload);
      res.writeHead(rec.status, {
        ...(isJson ? { 'content-type': 'application/json' } : {}),
        ...(reply.headers ?? {}),
      });
      res.end(payload);
    });
  });
  if (onUpgrade) server.on('upgrade', onUpgrade);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    notify,
    /** Answers the next `n` requests (optionally only those `match(req)` accepts) with `reply`. */
    failNext(n, reply = { status: 500, body: 'scripted failure' }, match) {
      for (let i = 0; i < n; i++) queued.push({ reply, match });
    },
    /** Resolves once `predicate(requests)` holds (re-checked on every request, finish and abort). */
    async waitFor(predicate, timeout = 15_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const result = predicate(requests);
        if (result) return result;
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new Error(`fake http: timed out; ${requests.length} requests seen`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.min(remaining, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
