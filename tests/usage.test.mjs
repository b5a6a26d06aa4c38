// Usage, cost and quotas end to end in workerd: a live call's usage (tokens from the OpenAI
// fake's final `usage` chunk, TTS characters, STT audio) in the call's JSON and in
// GET /api/v1/usage, its cost at the PRICE_* unit prices, the end-of-call Usage step retried
// after a real D1 failure without double counting, incoming calls over the concurrent-call
// quota refused (also when they arrive together), and a dispatch over the monthly minutes held
// back (never dropped) until the quota is raised.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sqlText, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, sessionState, hangUp, twilioIncoming, QUIET_SESSION } from './live-setup.mjs';
import { sendStatusCallback, twilioCallParams, startFakeTwilio } from './fakes/twilio.mjs';
import { skipBrowser, launchBrowser, newPage, shotBoth } from './browser.mjs';

const NUMBER = '+15550003001';
const ACCOUNT_SID = 'AC' + '1'.repeat(32);
const PRICES = {
  PRICE_CARRIER_PER_MINUTE: '0.0085',
  PRICE_STT_PER_MINUTE: '0.0043',
  PRICE_LLM_PER_1K_PROMPT_TOKENS: '1.5',
  PRICE_LLM_PER_1K_COMPLETION_TOKENS: '2',
  PRICE_TTS_PER_1K_CHARS: '0.3',
  PRICE_CURRENCY: 'EUR',
};
const isSummaryRequest = (req) => req.parsed?.stream === false;

let setup, worker, dg, openai, twilio, agent;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  setup = await startLiveWorker({
    vars: {
      ...PRICES, FINALIZE_RETRY_BASE_SECONDS: '1', QUOTA_RECHECK_SECONDS: '1',
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID, DEFAULT_FROM_NUMBER: '+15017122661',
    },
  });
  ({ worker, dg, openai } = setup);
  agent = await createAgent(worker, {
    name: 'usage', system_prompt: 'You are the receptionist of Acme Bistro.', first_message: 'Hi.',
    voice: { provider: 'elevenlabs' }, session: QUIET_SESSION,
  });
  await createNumber(worker, NUMBER, agent.id);
});

after(async () => {
  await setup?.stop();
  await twilio?.close?.();
});

const today = () => new Date().toISOString().slice(0, 10);
const recorded = async (callId, name) => (await sessionState(worker, callId)).events.filter((e) => e.event === name);
const setQuotas = async (quotas) => {
  const res = await worker.api('PATCH', '/api/v1/tenants/ten_default', { quotas });
  assert.equal(res.status, 200, res.text);
  return res.body;
};
/** price × quantity / per in micro-units, rounded half up (what the core computes). */
const micros = (price, quantity, per) => Math.round((Math.round(Number(price) * 1e6) * quantity) / per);

test('a live call: usage in the call JSON and in /usage for today, its cost, the retried Usage step counts once', async () => {
  const answer = 'We open at nine.';
  openai.reply({ match: isSummaryRequest, text: 'The caller asked when the bistro opens.' });
  const call = await startTwilioCall(setup, { to: NUMBER, greeting: 't0-s0' });
  // The day's table goes away under the running worker: the Usage step fails on its first
  // attempt (its batch rolls back as a whole) and is retried from the alarm.
  await worker.d1('ALTER TABLE usage_daily RENAME TO usage_daily_offline');
  let restored = false;
  try {
    openai.reply({ text: answer });
    dg.say(call.stt, { transcript: 'When do you open?', is_final: true, speech_final: true });
    await eventually(() => call.playback.echoed('t1-s0'), { interval: 20, message: 'answer played' });
    await eventually(async () => (await sessionState(worker, call.callId)).turns.some((t) => t.id === 1), { message: 'turn 1 stored' });
    await hangUp(call);

    const [failure] = await eventually(async () => {
      const failures = await recorded(call.callId, 'finalize_failed');
      return failures.length && failures;
    }, { message: 'failed attempt recorded' });
    assert.deepEqual(failure.detail.failed.map((f) => f.step), ['usage']);
    const [none] = await worker.d1(`SELECT count(*) AS n FROM call_usage WHERE call_id = ${sqlText(call.callId)}`);
    assert.equal(none.n, 0, 'the failed batch left nothing behind');
    await worker.d1('ALTER TABLE usage_daily_offline RENAME TO usage_daily');
    restored = true;
    await eventually(async () => (await recorded(call.callId, 'finalized')).length, { timeout: 60_000, interval: 250, message: 'job finished by a retry' });
  } finally {
    if (!restored) await worker.d1('ALTER TABLE usage_daily_offline RENAME TO usage_daily');
  }

  const streamed = openai.chatRequests.filter((r) => r.parsed?.stream === true && r.usageSent);
  assert.ok(streamed.length >= 1, 'the LLM stream sent its usage chunk');
  assert.ok(streamed.every((r) => r.parsed.stream_options?.include_usage === true), 'usage requested on every stream');
  const prompt = streamed.reduce((n, r) => n + r.usageSent.prompt_tokens, 0);
  const completion = streamed.reduce((n, r) => n + r.usageSent.completion_tokens, 0);

  const res = await worker.api('GET', `/api/v1/calls/${call.callId}`);
  assert.equal(res.status, 200, res.text);
  const { usage, cost } = res.body;
  assert.equal(usage.llm_prompt_tokens, prompt);
  assert.equal(usage.llm_completion_tokens, completion);
  assert.ok(prompt > 0 && completion > 0);
  assert.equal(usage.tts_characters, 'Hi.'.length + answer.length);
  assert.equal(usage.tool_calls, 0);
  assert.equal(usage.carrier_seconds, res.body.duration_seconds ?? usage.carrier_seconds);
  assert.equal(usage.carrier_minutes, Math.ceil(usage.carrier_seconds / 60));
  // Caller audio streams in real time (20 ms frames) while the call lasts.
  const session = await sessionState(worker, call.callId);
  const frames = session.counters.usage_stt_frames;
  assert.ok(frames > 25, `frames sent to STT: ${frames}`);
  assert.equal(usage.stt_seconds, (frames * 20) / 1000);
  assert.ok(frames <= session.counters.media_frames, 'never more STT audio than the carrier sent');

  const expected = {
    carrier: micros(PRICES.PRICE_CARRIER_PER_MINUTE, usage.carrier_minutes, 1),
    stt: micros(PRICES.PRICE_STT_PER_MINUTE, frames * 20, 60_000),
    llm: micros(PRICES.PRICE_LLM_PER_1K_PROMPT_TOKENS, prompt, 1000) + micros(PRICES.PRICE_LLM_PER_1K_COMPLETION_TOKENS, completion, 1000),
    tts: micros(PRICES.PRICE_TTS_PER_1K_CHARS, usage.tts_characters, 1000),
  };
  const total = expected.carrier + expected.stt + expected.llm + expected.tts;
  assert.equal(cost.currency, 'EUR');
  assert.equal(cost.total_micros, total);
  assert.equal(cost.total, (total / 1e6).toFixed(6));
  assert.equal(cost.tts, (expected.tts / 1e6).toFixed(6));

  // Today's usage: this one call, counted once although its step ran twice.
  const day = await worker.api('GET', `/api/v1/usage?from=${today()}&to=${today()}&granularity=day`);
  assert.equal(day.status, 200, day.text);
  assert.equal(day.body.data.length, 1);
  const row = day.body.data[0];
  assert.equal(row.period, today());
  assert.equal(row.calls, 1);
  assert.equal(row.llm_prompt_tokens, prompt);
  assert.equal(row.llm_completion_tokens, completion);
  assert.equal(row.tts_characters, usage.tts_characters);
  assert.equal(row.stt_seconds, usage.stt_seconds);
  assert.equal(row.cost.total_micros, total);
  assert.equal(day.body.total.calls, 1);
  assert.equal(day.body.currency, 'EUR');
  const month = await worker.api('GET', `/api/v1/usage?granularity=month`);
  assert.equal(month.status, 200, month.text);
  assert.equal(month.body.data[0].period, today().slice(0, 7));
  assert.equal(month.body.data[0].calls, 1);
  assert.equal(month.body.quotas.month_minutes_used, usage.carrier_minutes);
});

test('the usage range is validated and tenant-scoped', async () => {
  for (const [query, field, code] of [
    ['from=2026-02-30', 'from', 'invalid_date'],
    ['granularity=week', 'granularity', 'invalid_value'],
    ['from=2026-03-02&to=2026-03-01', 'from', 'invalid_range'],
    ['from=2020-01-01&to=2026-01-01', 'from', 'range_too_long'],
  ]) {
    const res = await worker.api('GET', `/api/v1/usage?${query}`);
    assert.equal(res.status, 422, query);
    assert.equal(res.body.error.details[0].field, field, query);
    assert.equal(res.body.error.details[0].code, code, query);
  }
  // Another tenant sees none of this tenant's usage.
  const other = await worker.api('POST', '/api/v1/tenants', { name: 'other' });
  assert.equal(other.status, 201, other.text);
  const theirs = await worker.api('GET', `/api/v1/usage?from=${today()}&to=${today()}`, undefined, { key: other.body.api_key.key });
  assert.equal(theirs.status, 200, theirs.text);
  assert.deepEqual(theirs.body.data, []);
  assert.equal(theirs.body.total.calls, 0);
  // Only the bootstrap key sets quotas.
  const denied = await worker.api('PATCH', `/api/v1/tenants/${other.body.id}`, { quotas: { monthly_minutes: 0 } }, { key: other.body.api_key.key });
  assert.equal(denied.status, 403, denied.text);
  const bad = await worker.api('PATCH', '/api/v1/tenants/ten_default', { quotas: { max_concurrent_calls: -1 } });
  assert.equal(bad.status, 422, bad.text);
  assert.equal(bad.body.error.details[0].field, 'quotas.max_concurrent_calls');
});

/** A Twilio incoming-call webhook (no media stream follows); resolves to the TwiML. */
async function ring(to) {
  const res = await sendStatusCallback(`${worker.url}/voice/twilio/incoming`, TEST_VARS.TWILIO_AUTH_TOKEN, twilioCallParams({ to }));
  assert.equal(res.status, 200, res.text);
  return res.text;
}

test('incoming calls over the concurrent-call quota hear a message and are ended; arriving together, only the quota gets through', async () => {
  await setQuotas({ max_concurrent_calls: 1, monthly_minutes: 0 });
  try {
    const live = await startTwilioCall(setup, { to: NUMBER, greeting: 't0-s0' });
    const refused = await ring(NUMBER);
    assert.match(refused, /<Say[^>]*>Sorry, we cannot take your call right now/);
    assert.match(refused, /<Hangup\/>/);
    assert.doesNotMatch(refused, /<Stream/);
    const [row] = await worker.d1(`SELECT id, status, last_error FROM calls WHERE last_error = 'over_quota' ORDER BY created_at DESC LIMIT 1`);
    assert.equal(row.status, 'failed');
    const shown = await worker.api('GET', `/api/v1/calls/${row.id}`);
    assert.equal(shown.body.status, 'failed');
    const entry = shown.body.history.find((h) => h.to === 'failed');
    assert.equal(entry.detail.reason, 'over_quota');
    assert.equal(entry.detail.quota, 'max_concurrent_calls');
    await hangUp(live);
    await eventually(async () => (await worker.api('GET', `/api/v1/calls/${live.callId}`)).body.status === 'completed', { message: 'first call completed' });

    // The attack: many calls at once while one slot is free. The count is taken in the insert.
    const answers = await Promise.all(Array.from({ length: 5 }, () => ring(NUMBER)));
    assert.equal(answers.filter((xml) => /<Stream/.test(xml)).length, 1, answers.join('\n'));
    assert.equal(answers.filter((xml) => /<Hangup\/>/.test(xml)).length, 4);
  } finally {
    await setQuotas({ max_concurrent_calls: 0, monthly_minutes: null });
  }
});

test('a dispatch over the monthly minutes waits, recorded, and goes out once the quota allows', async () => {
  // The first test's call used its started minute(s): a quota of that many is used up.
  const used = (await worker.api('GET', '/api/v1/usage')).body.quotas.month_minutes_used;
  assert.ok(used >= 1);
  await setQuotas({ max_concurrent_calls: 0, monthly_minutes: used });
  const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: inSeconds(2), from: '+15017122661' });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  const createsFor = () => twilio.createRequests.filter((r) => (r.fields?.StatusCallback ?? '').includes(`call_id=${id}`));

  const deferred = await eventually(async () => {
    const call = (await worker.api('GET', `/api/v1/calls/${id}`)).body;
    return call.history.filter((h) => h.kind === 'deferred' && h.detail.reason === 'over_quota').length >= 2 && call;
  }, { timeout: 20_000, message: 'held back, looked at again' });
  assert.equal(deferred.status, 'scheduled', 'never dropped');
  assert.equal(deferred.history.find((h) => h.kind === 'deferred').detail.quota, 'monthly_minutes');
  assert.equal(createsFor().length, 0, 'not dialled while over quota');

  await setQuotas({ monthly_minutes: used + 10 });
  await eventually(() => createsFor().length === 1, { timeout: 20_000, message: 'dialled once the quota allows' });
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${id}`)).body.status === 'queued', { message: 'queued' });
  assert.equal(createsFor().length, 1);
});

test('the dashboard usage page: chart and figures for the range, the quotas; desktop and phone', { skip: skipBrowser }, async () => {
  const report = (await worker.api('GET', `/api/v1/usage?from=${today()}&to=${today()}`)).body;
  assert.equal(report.data.length, 1);
  const browser = await launchBrowser();
  try {
    const page = await newPage(browser, worker);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage', level: 2 }).waitFor();
    await page.getByLabel('From', { exact: true }).fill(today());
    await page.getByLabel('To', { exact: true }).fill(today());
    await page.getByLabel('Chart', { exact: true }).selectOption({ label: 'LLM tokens' });
    await page.getByRole('button', { name: 'Show usage' }).click();
    await page.waitForURL(/show=llm_tokens/);
    const chart = page.getByRole('img', { name: /LLM tokens per period, 1 period/ });
    await chart.waitFor();
    const tokens = report.data[0].llm_prompt_tokens + report.data[0].llm_completion_tokens;
    assert.match(await chart.locator('rect.bar title').first().textContent(), new RegExp(`${today()}: LLM tokens ${tokens.toLocaleString('en-US')}`));
    const rows = await page.locator('#usage-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.innerText.trim())));
    assert.equal(rows.length, 2, 'the day and the total');
    assert.equal(rows[0][0], today());
    assert.equal(rows[0][1], String(report.data[0].calls));
    assert.equal(rows[0].at(-1), report.data[0].cost.total, 'cost column in the configured currency');
    assert.equal(rows[1][0], 'Total');
    const q = report.quotas;
    const quotas = await page.locator('#usage-quotas').innerText();
    assert.match(quotas, new RegExp(`Minutes this month\\s+${q.month_minutes_used} used of ${q.monthly_minutes} minutes`));
    assert.match(quotas, new RegExp(`Concurrent calls\\s+${q.live_calls} live of unlimited`));
    const { overflow } = await shotBoth(page, 'usage');
    assert.ok(overflow <= 1, `usage page overflows by ${overflow}px`);
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
  }
});
