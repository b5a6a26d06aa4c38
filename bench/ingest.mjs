// The webhook-ingest load shared by `npm run bench` (bench/run.mjs) and the `ingest` profile
// (bench/profile.mjs): signed Resend webhooks, fired with N requests in flight.

import { performance } from 'node:perf_hooks';
import { TEST_VARS } from '../tests/harness.mjs';
import { signStandardWebhook, resendEvent } from '../tests/fakes/resend.mjs';

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Fires `requests` at `url` with `concurrency` in flight; latency per request in ms. `ok_rps`
 * counts only the 200s (a worker answering 500s fast is not ingesting); `error_statuses` tallies
 * the rest (`fetch` for a request that got no answer).
 */
export async function load(url, requests, concurrency) {
  let next = 0;
  let errors = 0;
  const errorStatuses = {};
  const latencies = [];
  const started = performance.now();
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= requests.length) return;
      const t0 = performance.now();
      try {
        const res = await fetch(url, { method: 'POST', headers: requests[i].headers, body: requests[i].body });
        await res.arrayBuffer();
        if (res.status !== 200) {
          errors += 1;
          errorStatuses[res.status] = (errorStatuses[res.status] ?? 0) + 1;
        }
      } catch {
        errors += 1;
        errorStatuses.fetch = (errorStatuses.fetch ?? 0) + 1;
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: requests.length,
    concurrency,
    rps: round(requests.length / seconds),
    ok_rps: round((requests.length - errors) / seconds),
    p50_ms: round(quantile(latencies, 0.5), 2),
    p99_ms: round(quantile(latencies, 0.99), 2),
    errors,
    error_statuses: errorStatuses,
  };
}

/** Signed Resend (Svix scheme) webhooks, each a distinct event, signed before timing starts. */
export function resendRequests(count, tag) {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, (_, i) => {
    const body = JSON.stringify(resendEvent('email.delivered', { subject: `bench ${tag} ${i}` }));
    const headers = {
      'content-type': 'application/json',
      ...signStandardWebhook(TEST_VARS.RESEND_WEBHOOK_SECRET, `msg_bench_${tag}_${i}`, now, body),
    };
    return { body, headers };
  });
}

