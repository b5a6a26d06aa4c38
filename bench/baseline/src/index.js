// The hand-written alternative to phone-agent's webhook ingest, used as the benchmark baseline.
import { Webhook } from 'svix';

export default {
  async fetch(request, env) {
    if (request.method !== 'POST') return new Response('not found', { status: 404 });
    const body = await request.text();
    let payload;
    try {
      // svix 2's verify throws on a bad signature and returns nothing; parse once it passed.
      new Webhook(env.RESEND_WEBHOOK_SECRET).verify(body, Object.fromEntries(request.headers));
      payload = JSON.parse(body);
    } catch {
      return Response.json({ error: 'invalid signature' }, { status: 401 });
    }
    const result = await env.DB.prepare(
      'INSERT INTO events (id, type, body, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
    )
      .bind(request.headers.get('svix-id'), payload.type ?? 'unknown', body, Date.now())
      .run();
    return Response.json({ received: true, duplicate: result.meta.changes === 0 });
  },
};
