// Campaign figures: importing a 100,000-row CSV list (`POST /api/v1/campaigns`: time, and the
// D1 statements it took, from the request's log line) and scheduling ticks over those 100,000
// due contacts (each cron run: the campaign tick claims up to its bound, the dispatcher dials
// them through the fake Twilio). Part of `npm run bench` (section `campaigns`); also
// `node bench/campaigns.mjs` alone.

import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startWorker } from '../tests/harness.mjs';
import { startFakeTwilio } from '../tests/fakes/twilio.mjs';

const ROWS = 100_000;
const TICKS = 5;
const ACCOUNT_SID = 'AC' + '2'.repeat(32);
const AUTH_TOKEN = 'bench-token';
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const ZONES = ['America/New_York', 'America/Chicago', 'Europe/London', 'Asia/Tokyo'];

/** Runs the campaign measurements; returns the figures. */
export async function campaignBench({ rows = ROWS, ticks = TICKS } = {}) {
  const twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  const worker = await startWorker({
    vars: {
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      DEFAULT_FROM_NUMBER: '+15017122661', OUTBOUND_CALLS_PER_HOUR: '1000000',
    },
  });
  try {
    const agent = await worker.api('POST', '/api/v1/agents', {
      name: 'Bench', system_prompt: 'You call people.', voice: { provider: 'elevenlabs', voice_id: 'v' },
    });
    const lines = ['phone,name,time_zone,plan,order'];
    for (let i = 0; i < rows; i++) {
      lines.push(`+1415${String(i).padStart(7, '0')},"Contact, ${i}",${ZONES[i % ZONES.length]},gold,${i}`);
    }
    const csv = lines.join('\r\n') + '\r\n';
    const body = {
      agent_id: agent.body.id, name: 'Bench', csv,
      // Every day, all day: every contact is due and inside the window.
      window: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], from: '00:00', to: '24:00' },
      pacing: { calls_per_minute: 1000, max_concurrent: 500 },
    };
    const t0 = performance.now();
    let created;
    try {
      created = await worker.api('POST', '/api/v1/campaigns', body);
    } catch (e) {
      // Reported, not thrown: the figure of the sizes that did import still counts.
      return { rows, csv_bytes: Buffer.byteLength(csv), error: `import request failed after ${round((performance.now() - t0) / 1000)} s: ${e.cause?.code ?? e.message}` };
    }
    const importMs = performance.now() - t0;
    if (created.status !== 201) return { rows, csv_bytes: Buffer.byteLength(csv), error: `import: ${created.status} ${created.text.slice(0, 300)}` };
    const logLine = worker.logs().find((l) => l.msg === 'request' && l.route === 'POST /api/v1/campaigns' && l.status === 201);
    const tickMs = [];
    const dialsPerTick = [];
    for (let i = 0; i < ticks; i++) {
      const before = twilio.createRequests.length;
      const t = performance.now();
      await worker.scheduled();
      tickMs.push(round(performance.now() - t));
      dialsPerTick.push(twilio.createRequests.length - before);
    }
    const sorted = [...tickMs].sort((a, b) => a - b);
    return {
      rows,
      csv_bytes: Buffer.byteLength(csv),
      import_ms: round(importMs),
      import_d1_statements: logLine?.import_statements ?? null,
      import_request_ms: logLine?.duration_ms ?? null,
      due_contacts: rows,
      tick_ms: tickMs,
      tick_p50_ms: sorted[Math.floor(sorted.length / 2)],
      dials_per_tick: dialsPerTick,
    };
  } finally {
    await worker.stop();
    await twilio.close();
  }
}

/** The table rows of the campaign figures (one measurement or a list of them). */
export function campaignLines(c) {
  if (Array.isArray(c)) return c.flatMap(campaignLines);
  if (c.error) return [`  campaign import ${c.rows.toLocaleString('en')} rows (${round(c.csv_bytes / 2 ** 20)} MiB CSV): ${c.error}`];
  return [
    `  campaign import ${c.rows.toLocaleString('en')} rows (${round(c.csv_bytes / 2 ** 20)} MiB CSV): ${c.import_ms} ms (worker ${c.import_request_ms} ms), ${c.import_d1_statements} D1 statements (four a batch)`,
    `  scheduling tick (cron run: campaign tick + dispatch) with ${c.due_contacts.toLocaleString('en')} due contacts: p50 ${c.tick_p50_ms} ms, ${c.dials_per_tick.join('/')} dials per tick (bound: 50 claims a tick); ticks ${c.tick_ms.join(', ')} ms`,
  ];
}

/** The sizes measured: a list every deployment takes, and the 100,000-row maximum. */
export async function campaignBenches() {
  const out = [];
  for (const rows of [20_000, ROWS]) out.push(await campaignBench({ rows }));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const c = await campaignBenches();
  console.log('Campaigns');
  console.log(campaignLines(c).join('\n'));
  console.log(JSON.stringify(c));
}
