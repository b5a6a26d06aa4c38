// A fake HTTP provider on 127.0.0.1: records every request and answers from a script.
// Providers' real wire formats are built on top of it (one file per provider).

import { createServer } from 'node:http';

/**
 * Starts a fake HTTP server.
 * `routes` maps "METHOD /path" (exact path, no query) to a handler `(req) => response`, where
 * `req` is {method, path, query, headers, body (string), json()} and a response is
 * {status?, headers?, body?: string|object, delayMs?}. Unmatched requests get `fallback`
 * (default 404). Scripted one-off responses (`failNext`) take precedence over routes.
 */
export async function startFakeHttp({ routes = {}, fallback } = {}) {
  const requests = [];
  const queued = [];
  const waiters = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const url = new URL(req.url, 'http://fake');
      const body = Buffer.concat(chunks);
      const recorded = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        search: url.search,
        headers: req.headers,
        rawBody: body,
        body: body.toString('utf8'),
        at: Date.now(),
        json() {
          return JSON.parse(this.body);
        },
        form() {
          return new URLSearchParams(this.body);
        },
      };
      requests.push(recorded);
      for (const w of waiters.splice(0)) w();
      const key = `${req.method} ${url.pathname}`;
      let reply;
      if (queued.length > 0 && (!queued[0].match || queued[0].match(recorded))) {
        reply = queued.shift().reply;
      } else if (routes[key]) {
        reply = await routes[key](recorded);
      } else if (fallback) {
        reply = await fallback(recorded);
      } else {
        reply = { status: 404, body: { error: 'no such fake route', route: key } };
      }
      reply = reply ?? { status: 200 };
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
      if (reply.destroy) {
        req.socket.destroy();
        return;
      }
      const isJson = reply.body !== undefined && typeof reply.body !== 'string' && !Buffer.isBuffer(reply.body);
      const payload = isJson ? JSON.stringify(reply.body) : (reply.body ?? '');
      res.writeHead(reply.status ?? 200, {
        ...(isJson ? { 'content-type': 'application/json' } : {}),
        ...(reply.headers ?? {}),
      });
      res.end(payload);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    routes,
    /** Answers the next `n` requests (optionally only those matching) with `reply`. */
    failNext(n, reply = { status: 500, body: 'scripted failure' }, match) {
      for (let i = 0; i < n; i++) queued.push({ reply, match });
    },
    /** Resolves once `predicate(requests)` holds. */
    async waitFor(predicate, timeout = 15_000) {
      const deadline = Date.now() + timeout;
      while (!predicate(requests)) {
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
      return requests;
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
