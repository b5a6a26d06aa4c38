// The dashboard's calls job in headless Chromium against the real worker in workerd: the demo
// call (scripts/demo.mjs's runDemo, the provider stand-ins of tests/live-setup.mjs) watched live
// while the scripted caller talks, the barge-in's unheard part struck through, then the call's
// detail (transcript, summary, latency chart, direction, both numbers, agent) and the calls list
// filtered by direction; a scheduled call's time shown in its own zone from a browser in another
// zone; rescheduling from the call's page. Screenshots go to test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TEST_VARS, UNDIALLED_TWILIO } from './harness.mjs';
import { startProviderFakes } from './live-setup.mjs';
import { skipBrowser, launchBrowser, newPage, shotBoth } from './browser.mjs';
import { runDemo, DEMO_AGENT, DEMO_NUMBER, DEMO_CALLER, DEMO_SCRIPT } from '../scripts/demo.mjs';

let fakes;
let worker;
let browser;
let agent;

before(async () => {
  if (skipBrowser) return;
  fakes = await startProviderFakes();
  [worker, browser] = await Promise.all([
    startWorker({ vars: { ...fakes.vars, DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    launchBrowser(),
  ]);
  const created = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You confirm appointments.' });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await fakes?.close();
});

/** `YYYY-MM-DD` of `date` in `zone`. */
function dayIn(date, zone) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(date);
}

/** Schedules a Twilio call for `local_time` in `time_zone` through the API; resolves to the call. */
async function schedule(local_time, time_zone) {
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, local_time, time_zone, provider: 'twilio' });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

test('the demo call watched live: lines appear as the caller talks, the barge-in\'s unheard part is struck; then its detail and the list', { skip: skipBrowser }, async () => {
  const lines = [];
  try {
    await watchDemo(lines);
  } catch (e) {
    // What the scripted call got to: the demo's own log, since CI keeps only the failure.
    e.message += `\n[demo log]\n${lines.join('\n')}`;
    throw e;
  }
});

/** The demo call, watched in the live view; the demo's log lines go to `lines`. */
async function watchDemo(lines) {
  const started = Date.now();
  const page = await newPage(browser, worker);
  let ringing;
  const rang = new Promise((resolve) => {
    ringing = resolve;
  });
  let ended = false;
  const demo = runDemo({
    url: worker.url, key: TEST_VARS.ADMIN_API_KEY, twilioAuthToken: TEST_VARS.TWILIO_AUTH_TOKEN, fakes,
    ringMs: 4000, pauseMs: 700, wordMs: 60,
    log: (line) => {
      lines.push(`${Date.now() - started} ms ${line}`);
      const live = /Watch it live: (\S+)/.exec(line);
      if (live) ringing(live[1]);
    },
  }).finally(() => {
    ended = true;
  });
  const liveUrl = await Promise.race([rang, demo.then(() => assert.fail('the demo ended before its call rang'))]);
  const callId = /#\/calls\/([^/]+)\/live$/.exec(liveUrl)[1];
  await page.goto(liveUrl);
  await page.getByRole('heading', { name: `Live: ${callId}` }).waitFor();
  await page.locator('#live-connection', { hasText: 'connected' }).waitFor();

  const transcript = page.locator('#live-transcript');
  const [t1, t2] = DEMO_SCRIPT.turns;
  const { bargeIn } = DEMO_SCRIPT;
  // The agent's lines come sentence by sentence as each is sent to the carrier.
  const agentSays = async (turn, text) => {
    const last = /[^.!?]+[.!?]$/.exec(text)[0].trim();
    await transcript.locator(`li.agent[data-turn="${turn}"]`, { hasText: last }).waitFor({ timeout: 20_000 });
    const said = await transcript.locator(`li.agent[data-turn="${turn}"] .text`).allInnerTexts();
    assert.equal(said.join(' '), text);
  };
  await agentSays(0, DEMO_AGENT.first_message);
  await transcript.locator('li.caller', { hasText: t1.caller }).waitFor({ timeout: 20_000 });
  await agentSays(1, t1.agent);
  assert.equal(ended, false, 'the first turn showed while the call was still going');
  assert.equal(await transcript.locator('li.ended').count(), 0, 'the first turn showed before the call ended');
  await agentSays(2, t2.agent);
  await transcript.locator('li.caller', { hasText: bargeIn.caller }).waitFor({ timeout: 20_000 });

  // The barge-in: one agent line for the turn, the heard sentence, then the unheard one struck.
  const cut = transcript.locator('li.agent.interrupted', { has: page.locator('del') });
  await cut.waitFor({ timeout: 20_000 });
  assert.equal(ended, false, 'the cut showed while the call was still going');
  assert.equal(await cut.count(), 1);
  assert.equal((await cut.locator('del').innerText()).trim(), bargeIn.agent[1]);
  const said = await cut.locator('.text').innerText();
  assert.ok(said.startsWith(bargeIn.agent[0]), said);
  assert.match(await cut.locator('.sr-only').innerText(), /not heard by the caller/i);
  assert.equal(await transcript.locator('li.agent', { hasText: 'mushroom risotto' }).count(), 1, 'the unheard sentence is only in the cut line');
  await transcript.locator('li.barge-in').first().waitFor();
  await transcript.locator('li.caller', { hasText: bargeIn.interruption }).waitFor({ timeout: 20_000 });
  await agentSays(4, DEMO_SCRIPT.goodbye);
  await transcript.locator('li.ended').waitFor({ timeout: 20_000 });
  assert.ok(await page.locator('#live-metrics svg.chart rect.bar').count() >= 4);
  const live = await shotBoth(page, 'calls-live');
  assert.ok(live.overflow <= 1, `live view overflows by ${live.overflow}px at phone width`);

  const result = await demo;
  assert.equal(result.callId, callId);
  // What the API holds: the cut turn's heard text and, beside it, the unheard part.
  const stored = await worker.api('GET', `/api/v1/calls/${callId}/transcript`);
  assert.equal(stored.status, 200, stored.text);
  const cutTurn = stored.body.turns.find((t) => t.role === 'agent' && t.interrupted);
  assert.equal(cutTurn.text, bargeIn.agent[0]);
  assert.equal(cutTurn.unheard, bargeIn.agent[1]);
  assert.ok(!stored.body.text.includes('risotto'));

  // Reopened after the end, the live view draws the same cut from the session's turns (hello).
  await page.reload();
  await page.locator('#live-transcript li.agent.interrupted del', { hasText: 'mushroom risotto' }).waitFor();

  // The call's detail: direction, both numbers, the agent by name, transcript, summary, chart.
  await page.goto(`${worker.url}/#/calls/${callId}`);
  await page.getByRole('heading', { name: `Call ${callId}` }).waitFor();
  const facts = page.locator('dl.facts');
  assert.match(await facts.innerText(), /Direction\s+↘ inbound/);
  assert.match(await facts.innerText(), new RegExp(`From\\s+\\${DEMO_CALLER}\\s+To\\s+\\${DEMO_NUMBER}`));
  const call = (await worker.api('GET', `/api/v1/calls/${callId}`)).body;
  assert.equal(call.direction, 'inbound');
  assert.equal(call.from, DEMO_CALLER);
  assert.equal(call.agent_name, DEMO_AGENT.name);
  const agentLink = page.getByRole('link', { name: DEMO_AGENT.name });
  assert.equal(await agentLink.getAttribute('href'), `#/agents/${call.agent_id}`);
  await page.locator('p.summary', { hasText: DEMO_SCRIPT.summary }).waitFor();
  const detailTranscript = page.locator('ol.transcript');
  await detailTranscript.locator('li.caller', { hasText: t1.caller }).waitFor();
  assert.equal(await detailTranscript.locator('li.agent.interrupted del').innerText(), bargeIn.agent[1]);
  assert.ok(await page.locator('svg.chart rect.bar').count() >= 4, 'per-turn latency chart');
  const detail = await shotBoth(page, 'calls-detail');
  assert.ok(detail.overflow <= 1, `call detail overflows by ${detail.overflow}px at phone width`);

  // The list, narrowed to inbound calls through the filter form.
  const outbound = await schedule(`${dayIn(new Date(Date.now() + 2 * 86_400_000), 'UTC')}T10:00`, 'UTC');
  await page.goto(`${worker.url}/#/calls`);
  await page.getByLabel('Direction').selectOption('inbound');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/direction=inbound/);
  const row = page.locator(`#calls-list tr[data-id="${callId}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(`↘ inbound\\s+\\${DEMO_CALLER}\\s+\\${DEMO_NUMBER}`));
  assert.equal(await page.locator(`#calls-list tr[data-id="${outbound.id}"]`).count(), 0);
  const inbound = await worker.api('GET', '/api/v1/calls?direction=inbound');
  assert.deepEqual(inbound.body.data.map((c) => c.id), [callId]);
  const both = await worker.api('GET', '/api/v1/calls');
  assert.equal(both.body.data.find((c) => c.id === outbound.id).direction, 'outbound');
  const wrong = await worker.api('GET', '/api/v1/calls?direction=sideways');
  assert.equal(wrong.status, 422, wrong.text);
  assert.equal(wrong.body.error.details[0].field, 'direction');
  await page.getByLabel('Direction').selectOption('');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.locator(`#calls-list tr[data-id="${outbound.id}"]`).waitFor();
  const list = await shotBoth(page, 'calls-list');
  assert.ok(list.overflow <= 1, `calls list overflows by ${list.overflow}px at phone width`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
}

test('a call\'s time is shown in its own zone, labelled, with the viewer\'s time beside it', { skip: skipBrowser }, async () => {
  // A browser in Berlin looks at a call for 13:07 New York time tomorrow.
  const day = dayIn(new Date(Date.now() + 86_400_000), 'America/New_York');
  const call = await schedule(`${day}T13:07`, 'America/New_York');
  const page = await newPage(browser, worker, { context: { timezoneId: 'Europe/Berlin', locale: 'en-US' } });
  await page.goto(`${worker.url}/#/calls/${call.id}`);
  await page.getByRole('heading', { name: `Call ${call.id}` }).waitFor();
  const starts = page.locator('.zoned-time');
  const text = await starts.innerText();
  assert.match(text, /1:07\sPM \(America\/New_York\)/, text);
  const berlin = new Date(call.start_at).toLocaleTimeString('en-US', { timeZone: 'Europe/Berlin', hour: 'numeric', minute: '2-digit' });
  assert.ok(text.replace(/\s/g, ' ').includes(`${berlin.replace(/\s/g, ' ')} your time (Europe/Berlin)`), text);
  assert.doesNotMatch(text, new RegExp(`${berlin.replace(/\s/g, '\\s')} \\(America/New_York\\)`), 'the viewer\'s time is never labelled with the call\'s zone');
  assert.equal(await starts.locator('time').getAttribute('datetime'), new Date(call.start_at).toISOString());
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('reschedule a scheduled call from its page: the picked zone\'s wall time becomes the API\'s start_at', { skip: skipBrowser }, async () => {
  const day = dayIn(new Date(Date.now() + 86_400_000), 'America/New_York');
  const call = await schedule(`${day}T09:00`, 'America/New_York');
  const page = await newPage(browser, worker);
  await page.goto(`${worker.url}/#/calls/${call.id}`);
  const form = page.getByRole('form', { name: 'Reschedule' });
  await form.waitFor();
  assert.equal(await form.getAttribute('data-needs'), 'operate');
  // The form starts from the call's own time and zone.
  assert.equal(await form.getByLabel('New date and time').inputValue(), `${day}T09:00`);
  assert.equal(await form.getByLabel('Time zone').inputValue(), 'America/New_York');
  const reschedule = await shotBoth(page, 'calls-reschedule');
  assert.ok(reschedule.overflow <= 1, `reschedule form overflows by ${reschedule.overflow}px at phone width`);

  // Tokyo keeps no daylight saving time: 09:30 there is 00:30 UTC the same day.
  const year = new Date().getUTCFullYear() + 1;
  await form.getByLabel('New date and time').fill(`${year}-01-15T09:30`);
  await form.getByLabel('Time zone').selectOption('Asia/Tokyo');
  await form.getByRole('button', { name: 'Reschedule' }).click();
  await page.locator('#status', { hasText: `Call ${call.id} rescheduled` }).waitFor();
  const moved = (await worker.api('GET', `/api/v1/calls/${call.id}`)).body;
  assert.equal(Date.parse(moved.start_at), Date.parse(`${year}-01-15T00:30:00Z`));
  assert.equal(moved.time_zone, 'Asia/Tokyo');
  assert.equal(moved.sequence, call.sequence + 1);
  assert.ok(moved.history.some((e) => e.kind === 'reschedule'));
  await page.locator('.zoned-time', { hasText: 'Asia/Tokyo' }).waitFor();
  assert.match(await page.locator('.zoned-time time').innerText(), /9:30\sAM \(Asia\/Tokyo\)/);

  // A time in the past is refused and the field says why.
  await form.getByLabel('New date and time').fill('2001-01-01T09:00');
  await form.getByRole('button', { name: 'Reschedule' }).click();
  await form.locator('.error-box').waitFor({ state: 'visible' });
  assert.equal(await form.getByLabel('New date and time').getAttribute('aria-invalid'), 'true');
  const unchanged = (await worker.api('GET', `/api/v1/calls/${call.id}`)).body;
  assert.equal(unchanged.start_at, moved.start_at);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
