// The dashboard (public/) in headless Chromium against the real worker in workerd: log in, see a
// seeded call and its detail, schedule a call through the form (time-zone picker, confirmation
// email through fake Resend), create an endpoint, dead-letter a delivery at a failing fake
// target and replay it from the UI, and the live call view. Screenshots go to test-output/.
//
// Needs Debian's chromium at /usr/bin/chromium (scripts/bootstrap.sh installs it) and the
// playwright-core npm package (no browser download).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, TEST_VARS, UNDIALLED_TWILIO } from './harness.mjs';
import { startFakeResend } from './fakes/resend.mjs';
import { skipBrowser, launchBrowser, newPage as openPage, shot } from './browser.mjs';
import { sendResendWebhook, resendEvent } from './fakes/resend.mjs';
import { startFakeTarget } from './fakes/target.mjs';

const KEY = TEST_VARS.ADMIN_API_KEY;

let worker;
let resend;
let target;
let browser;
let agent;
let seeded;

before(async () => {
  if (skipBrowser) return;
  resend = await startFakeResend({ apiKey: 're_test_key' });
  target = await startFakeTarget();
  [worker, browser] = await Promise.all([
    startWorker({
      vars: {
        RESEND_API_URL: resend.url,
        RESEND_API_KEY: 're_test_key',
        EMAIL_FROM: 'Acme Calls <calls@acme.example>',
        DEFAULT_FROM_NUMBER: '+15017122661',
        ...UNDIALLED_TWILIO,
      },
    }),
    launchBrowser(),
  ]);
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Ava', system_prompt: 'You confirm appointments.', first_message: 'Hi, this is Ava.',
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
  const call = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675310', agent_id: agent.id, start_at: new Date(Date.now() + 86_400_000).toISOString(),
    contact: { name: 'Grace Hopper', email: 'grace@example.com' }, provider: 'twilio',
  });
  assert.equal(call.status, 201, call.text);
  seeded = call.body;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await Promise.all([resend?.close(), target?.close()]);
});

const newPage = (opts) => openPage(browser, worker, opts);

test('a banner lists the features this server cannot use, with the variables to set', { skip: skipBrowser }, async () => {
  const page = await newPage();
  const banner = page.locator('#config-banner');
  await banner.locator('summary').click();
  const live = banner.locator('li[data-feature="live_calls"]');
  assert.equal(await live.innerText(), 'live calls: set DEEPGRAM_API_KEY, OPENAI_API_KEY, ELEVENLABS_API_KEY');
  assert.equal(await banner.locator('li[data-feature="scheduled_calls.bland"]').innerText(), 'scheduled calls (bland): set BLAND_API_KEY');
  // What this worker has configured is not listed.
  assert.equal(await banner.locator('li[data-feature="emails"]').count(), 0);
  assert.equal(await banner.locator('li[data-feature="scheduled_calls.twilio"]').count(), 0);
  await shot(page, 'config-banner');
  assert.deepEqual(page.errors, []);
});

test('log in, see the seeded call in the list and open its detail', { skip: skipBrowser }, async () => {
  const page = await newPage({ login: false });
  await page.goto(`${worker.url}/`);
  assert.match(await page.title(), /phone-agent/);
  // A wrong key is refused next to the form; nothing is stored.
  await page.getByLabel('API key').fill('wrong-key');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await shot(page, 'login');

  await page.getByLabel('API key').fill(KEY);
  await page.keyboard.press('Enter');
  const row = page.locator(`tr[data-id="${seeded.id}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /\+15558675310/);
  assert.match(await row.innerText(), /scheduled/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('phone-agent.api-key')), KEY);
  // Every API request carried the bearer key from session storage.
  const auth = await page.evaluate(async () => (await fetch('/api/v1/calls', { headers: { authorization: `Bearer ${sessionStorage.getItem('phone-agent.api-key')}` } })).status);
  assert.equal(auth, 200);
  await shot(page, 'calls');

  // Filters: a status with no calls empties the table; clearing brings the call back.
  await page.getByLabel('Status').selectOption('completed');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByText('No calls match these filters.').waitFor();
  assert.match(page.url(), /#\/calls\?status=completed/);
  await page.getByRole('button', { name: 'Clear' }).click();
  await row.waitFor();

  // Keyboard: the call link is reachable and opens the detail page.
  await row.getByRole('link', { name: seeded.id }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: `Call ${seeded.id}` }).waitFor();
  const history = page.locator('section[aria-labelledby="history-title"] tbody tr');
  await history.first().waitFor();
  assert.match(await history.first().innerText(), /scheduled/);
  assert.match(await page.locator('.facts').first().innerText(), /Grace Hopper/);
  await shot(page, 'call-detail');

  // Narrow screens: the table turns into labelled stacks, no horizontal scrolling.
  await page.setViewportSize({ width: 360, height: 800 });
  await page.goto(`${worker.url}/#/calls`);
  await row.waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scroll at 360 px (overflow ${overflow})`);
  await shot(page, 'calls-360px');

  // A key revoked mid-session (here: forgotten by the server) returns to the login form.
  await page.evaluate(() => sessionStorage.setItem('phone-agent.api-key', 'revoked-key'));
  await page.goto(`${worker.url}/#/events`);
  await page.getByLabel('API key').waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('call detail shows the post-call analysis: values and success when ok, the reasons when invalid', { skip: skipBrowser }, async () => {
  const page = await newPage();
  let analysis = {
    status: 'ok', values: { intent: 'booking', party_size: 2, caller_name: null }, success: true,
    success_reason: 'A table for two was booked.', errors: [], raw: null,
  };
  await page.route(`**/api/v1/calls/${seeded.id}`, async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, json: { ...(await res.json()), analysis } });
  });
  await page.goto(`${worker.url}/#/calls/${seeded.id}`);
  const card = page.locator('section.card', { has: page.getByRole('heading', { name: 'Analysis', exact: true }) });
  await card.waitFor();
  const text = await card.innerText();
  for (const part of ['ok', 'intent', 'booking', 'party_size', '2', 'yes · A table for two was booked.']) assert.ok(text.includes(part), `${part} in ${text}`);
  analysis = { status: 'invalid', values: null, success: null, success_reason: null, errors: ['intent: "refund" is not one of the field\'s values'], raw: '{"intent":"refund"}' };
  await page.reload();
  await card.waitFor();
  assert.match(await card.locator('ul.analysis-errors li').innerText(), /refund/);
  assert.ok(!(await card.innerText()).includes('Success'));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('call detail renders transcript, summary and the per-turn latency chart when present', { skip: skipBrowser }, async () => {
  // The live-call work adds these fields to GET /api/v1/calls/{id}; until then, serve that shape.
  const page = await newPage();
  await page.route(`**/api/v1/calls/${seeded.id}`, async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    const metrics = (turn, a, b, c, d) => ({ turn, user_turn: turn > 0, metrics: { llm_first_token_ms: a, tts_first_byte_ms: b, first_audio_ms: c, first_mark_ms: d } });
    Object.assign(body, {
      status: 'completed', duration_seconds: 74, summary: 'Grace booked a table for two at seven.',
      transcript: { text: '', turns: [
        { role: 'agent', text: 'Hi, this is Ava.', turn: 0 },
        { role: 'caller', text: 'I would like to book a table.', turn: 1 },
        { role: 'agent', text: 'Sure. We have a table at seven', turn: 1, interrupted: true },
        { role: 'caller', text: 'Seven is perfect.', turn: 2 },
        { role: 'agent', text: 'Booked. See you tonight!', turn: 2 },
      ] },
      metrics: { turns: [metrics(0, 210, 95, 420, 980), metrics(1, 380, 120, 640, 1400), metrics(2, 300, 101, 530, 1100)], first_audio_ms: { p50: 530, p95: 640, n: 2 } },
    });
    await route.fulfill({ response: res, json: body });
  });
  await page.goto(`${worker.url}/#/calls/${seeded.id}`);
  await page.getByRole('heading', { name: `Call ${seeded.id}` }).waitFor();
  assert.match(await page.locator('.summary').innerText(), /table for two/);
  assert.equal(await page.locator('ol.transcript li').count(), 5);
  assert.match(await page.locator('ol.transcript li.interrupted').innerText(), /barge-in/);
  assert.equal(await page.locator('svg.chart rect.bar').count(), 12);
  assert.match(await page.locator('.facts').first().innerText(), /1 min 14 s/);
  await shot(page, 'call-detail-completed');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('schedule a call through the form: time-zone picker, field errors, confirmation state', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.getByRole('link', { name: 'Schedule a call' }).first().click();
  await page.getByRole('heading', { name: 'Schedule a call' }).waitFor();
  // The time zone defaults to the browser's and lists IANA names.
  const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  assert.equal(await page.getByLabel('Time zone').inputValue(), zone);
  assert.ok(await page.locator('select[name="time_zone"] option[value="Europe/Paris"]').count());

  await page.getByLabel('Phone number to call').fill('+15550003333');
  await page.getByLabel('Agent').selectOption(agent.id);
  await page.getByLabel('Time zone').selectOption('America/New_York');
  await page.getByLabel('Name').fill('Ada Lovelace');
  await page.getByLabel('Email').fill('ada@example.com');
  await page.getByLabel('Provider').selectOption('twilio');

  // A time in the past: the API's 422 shows next to the form and the field.
  await page.getByLabel('Date and time').fill('2020-01-01T10:00');
  await page.getByRole('button', { name: 'Schedule call' }).click();
  const error = page.locator('.error-box').filter({ hasText: 'local_time' });
  await error.waitFor();
  assert.equal(await page.getByLabel('Date and time').getAttribute('aria-invalid'), 'true');
  await page.locator('.field-error').first().waitFor();
  await shot(page, 'schedule-error');

  // Tomorrow at 09:30 New York time.
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel('Date and time').fill(`${tomorrow}T09:30`);
  await page.getByRole('button', { name: 'Schedule call' }).click();
  const confirmation = page.locator('#schedule-confirmation');
  await confirmation.waitFor();
  assert.match(await page.locator('#schedule-status').innerText(), /scheduled/);
  assert.equal(await page.locator('.error-box').isVisible(), false);
  const callId = await confirmation.getByRole('link').innerText();
  // The email confirmation state follows the outbox: pending, then sent.
  await page.locator('#schedule-email').filter({ hasText: /^sent/ }).waitFor({ timeout: 15_000 });
  await shot(page, 'schedule');

  const call = await worker.api('GET', `/api/v1/calls/${callId}`);
  assert.equal(call.body.time_zone, 'America/New_York');
  assert.equal(call.body.contact.email, 'ada@example.com');
  const local = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(call.body.start_at));
  assert.equal(local, '09:30');
  assert.ok(resend.emails.some((e) => [].concat(e.body.to).includes('ada@example.com')), 'confirmation email sent');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('endpoints: create from the form, pause, resume, rotate the secret', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByRole('heading', { name: 'Endpoints' }).waitFor();
  // An invalid URL: the field error is shown.
  await page.getByLabel('URL').fill('ftp://nope.example');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await page.locator('.error-box').filter({ hasText: 'url' }).waitFor();

  await page.getByLabel('URL').fill(target.url);
  await page.getByLabel('Event types').fill('email.delivery_delayed');
  await page.getByLabel('Description').fill('dashboard test target');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  const secret = await page.locator('#secret-notice code.secret').innerText();
  assert.match(secret, /^whsec_/);
  target.setSecret(secret);
  page.on('dialog', (d) => d.accept());
  const row = page.locator('#endpoints-list tr', { hasText: target.url });
  await row.getByRole('button', { name: 'Pause' }).click();
  await row.getByText('paused').waitFor();
  await row.getByRole('button', { name: 'Resume' }).click();
  await row.getByText('enabled').waitFor();
  await row.getByRole('button', { name: 'Rotate secret' }).click();
  await page.locator('#secret-notice', { hasText: 'New secret' }).waitFor();
  const rotated = await page.locator('#secret-notice code.secret').innerText();
  assert.notEqual(rotated, secret);
  target.setSecret([rotated, secret]);
  await shot(page, 'endpoints');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a dead delivery shows in the dead-letter list with its attempts and is replayed from the UI', { skip: skipBrowser }, async () => {
  const endpoints = await worker.api('GET', '/api/v1/endpoints');
  const endpoint = endpoints.body.data.find((e) => e.url === target.url) ?? (await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: ['email.delivery_delayed'] })).body;
  target.respondWith(500);
  const sent = await sendResendWebhook(`${worker.url}/webhooks/resend`, TEST_VARS.RESEND_WEBHOOK_SECRET, resendEvent('email.delivery_delayed'));
  assert.equal(sent.status, 200, sent.text);
  const eventId = JSON.parse(sent.text).id;
  const dead = await eventually(async () => {
    const res = await worker.api('GET', `/api/v1/deliveries?event_id=${eventId}&status=dead`);
    return res.body.data[0];
  }, { timeout: 30_000, message: 'dead delivery' });
  assert.equal(dead.endpoint_id, endpoint.id);
  target.reset();
  const before = target.deliveries.length;

  const page = await newPage();
  await page.getByRole('link', { name: 'Events' }).click();
  await page.locator(`a[href="#/events/${eventId}"]`).click();
  await page.getByRole('heading', { name: `Event ${eventId}` }).waitFor();
  await page.locator(`a[href="#/deliveries/${dead.id}"]`).waitFor();
  await shot(page, 'event-detail');

  await page.getByRole('link', { name: 'Deliveries' }).click();
  await page.getByRole('link', { name: 'Dead-letter list' }).click();
  const row = page.locator(`tr[data-id="${dead.id}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /dead/);
  assert.match(await row.innerText(), /500/);
  await shot(page, 'deliveries-dead');

  await row.getByRole('link', { name: dead.id }).click();
  const attempts = page.locator('section[aria-labelledby="attempts-title"] tbody tr');
  await attempts.first().waitFor();
  assert.equal(await attempts.count(), 4, 'first attempt + 3 retries');
  assert.match(await attempts.first().innerText(), /500/);
  await shot(page, 'delivery-dead');

  await page.getByRole('button', { name: 'Replay' }).click();
  await target.waitFor((d) => d.length > before && d.at(-1).status === 200, 15_000);
  const delivered = target.deliveries.at(-1);
  assert.equal(delivered.id, eventId, 'same webhook-id on replay');
  assert.equal(delivered.verified, true, 'signed with the endpoint secret');
  await eventually(async () => (await worker.api('GET', `/api/v1/deliveries/${dead.id}`)).body.status === 'succeeded', { message: 'succeeded' });
  await page.reload();
  await page.locator('#delivery-status', { hasText: 'succeeded' }).waitFor();
  assert.equal(await attempts.count(), 5);
  await shot(page, 'delivery-replayed');

  // "Redrive dead" with nothing dead left: the API answers and the page says so.
  await page.goto(`${worker.url}/#/deliveries?status=dead`);
  page.on('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Redrive dead' }).click();
  await page.locator('#status', { hasText: '0 dead deliveries redriven' }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('live view renders the contract: transcript lines, barge-in, state and per-turn latency (scripted socket)', { skip: skipBrowser }, async () => {
  const page = await newPage();
  let url = null;
  let server;
  let connected;
  const opened = new Promise((resolve) => {
    connected = resolve;
  });
  await page.routeWebSocket(/\/api\/v1\/calls\/[^/]+\/live/, (ws) => {
    url = ws.url();
    server = ws;
    connected();
  });
  await page.goto(`${worker.url}/#/calls/${seeded.id}/live`);
  await page.getByRole('heading', { name: `Live: ${seeded.id}` }).waitFor();
  await opened;
  // The socket carries a single-use ticket (from POST /live-ticket), never the API key.
  assert.match(url, new RegExp(`/api/v1/calls/${seeded.id}/live\\?ticket=lvt_[0-9a-z]{26}$`));
  assert.ok(!url.includes(KEY) && !url.includes('key='), 'no API key in the live-view URL');

  const send = (m) => server.send(JSON.stringify({ at: Date.now(), ...m }));
  send({ type: 'hello', phase: 'live', call_id: seeded.id, turns: [{ id: 0, user_text: null, agent_text: 'Hi, this is Ava.', interrupted: false, metrics: { first_audio_ms: 410, llm_first_token_ms: 200 } }] });
  await page.locator('#live-transcript li', { hasText: 'Hi, this is Ava.' }).waitFor();
  send({ type: 'transcript', speaker: 'caller', text: 'I would like', final: false });
  await page.locator('#live-interim', { hasText: 'I would like' }).waitFor();
  send({ type: 'transcript', speaker: 'caller', text: 'I would like to book a table.', final: true });
  send({ type: 'state', state: 'thinking', turn: 1 });
  await page.locator('#live-transcript li.caller', { hasText: 'book a table' }).waitFor();
  assert.equal(await page.locator('#live-interim').innerText(), '');
  send({ type: 'state', state: 'interrupted' });
  await page.locator('#live-transcript li.barge-in').waitFor();
  send({ type: 'turn', turn: { id: 1, user_text: 'I would like to book a table.', agent_text: 'Sure. We have', interrupted: true, metrics: { first_audio_ms: 620, llm_first_token_ms: 350, tts_first_byte_ms: 110 } } });
  send({ type: 'transcript', speaker: 'agent', text: 'Sure. We have', final: true, turn: 1 });
  send({ type: 'metrics', turn: 1, metrics: { first_audio_ms: 620, llm_first_token_ms: 350, tts_first_byte_ms: 110, first_mark_ms: 1500 } });
  send({ type: 'state', state: 'listening' });
  await page.locator('#live-transcript li.agent.interrupted', { hasText: 'Sure. We have' }).waitFor();
  await page.locator('#live-latency', { hasText: '620 ms' }).waitFor();
  assert.ok(await page.locator('#live-metrics svg.chart rect.bar').count() >= 5);
  send({ type: 'barge_in', turn: 2 });
  send({ type: 'state', state: 'ended', reason: 'caller_hangup' });
  await page.locator('#live-transcript li.ended').waitFor();
  assert.match(await page.locator('#live-state').innerText(), /ended/);
  assert.equal(await page.locator('#live-transcript li.barge-in').count(), 2);
  await shot(page, 'live-scripted');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('live view: a socket dropped mid-turn loses nothing; the stored turn brings back what the caller said (scripted socket)', { skip: skipBrowser }, async () => {
  const page = await newPage();
  const sockets = [];
  await page.routeWebSocket(/\/api\/v1\/calls\/[^/]+\/live/, (ws) => {
    sockets.push(ws);
  });
  await page.goto(`${worker.url}/#/calls/${seeded.id}/live`);
  await eventually(() => sockets.length === 1, { message: 'the live view connected' });
  const send = (ws, m) => ws.send(JSON.stringify({ at: Date.now(), ...m }));
  const greeting = { id: 0, user_text: null, agent_text: 'Hi, this is Ava.', interrupted: false };
  send(sockets[0], { type: 'hello', phase: 'live', call_id: seeded.id, turns: [greeting] });
  send(sockets[0], { type: 'transcript', speaker: 'caller', text: 'Table for two, please.', final: true });
  const caller = page.locator('#live-transcript li.caller', { hasText: 'Table for two, please.' });
  await caller.waitFor();

  // The socket drops before the turn is stored: the reconnect's hello has only turn 0.
  await sockets[0].close({ code: 1011, reason: 'gone' });
  await eventually(() => sockets.length === 2, { timeout: 10_000, message: 'the live view reconnected' });
  send(sockets[1], { type: 'hello', phase: 'live', call_id: seeded.id, turns: [greeting] });
  await page.locator('#live-connection', { hasText: 'connected' }).waitFor();
  send(sockets[1], { type: 'transcript', speaker: 'agent', text: 'Of course.', final: true, turn: 1 });
  await page.locator('#live-transcript li.agent[data-turn="1"]').waitFor();
  assert.equal(await caller.count(), 0, 'the hello drew the stored turns only');
  send(sockets[1], { type: 'turn', turn: { id: 1, user_text: 'Table for two, please.', agent_text: 'Of course.', interrupted: false } });
  await caller.waitFor();
  const order = await page.locator('#live-transcript li.line').evaluateAll((lis) => lis.map((li) => `${li.classList.contains('caller') ? 'caller' : 'agent'}:${li.dataset.turn}`));
  assert.deepEqual(order, ['agent:0', 'caller:1', 'agent:1']);

  // A caller line the view did see is tagged with its turn, not drawn twice.
  send(sockets[1], { type: 'transcript', speaker: 'caller', text: 'At eight.', final: true });
  await page.locator('#live-transcript li.caller', { hasText: 'At eight.' }).waitFor();
  send(sockets[1], { type: 'turn', turn: { id: 2, user_text: 'At eight.', agent_text: 'Booked.', interrupted: false } });
  await page.locator('#live-transcript li.caller[data-turn="2"]', { hasText: 'At eight.' }).waitFor();
  assert.equal(await page.locator('#live-transcript li.caller', { hasText: 'At eight.' }).count(), 1);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('live view of a simulated call streams transcript lines from the call\'s Durable Object', { skip: skipBrowser }, async () => {
  // An inbound Twilio call through the live-call fakes, watched from the browser over
  // GET /api/v1/calls/{id}/live (WebSocket opened with a single-use ticket).
  const { startFakeDeepgram } = await import('./fakes/deepgram.mjs');
  const { startFakeOpenAI } = await import('./fakes/openai.mjs');
  const { startFakeElevenLabs } = await import('./fakes/elevenlabs.mjs');
  const { TwilioMediaClient } = await import('./fakes/ws.mjs');
  const { sendStatusCallback, twilioCallParams } = await import('./fakes/twilio.mjs');
  const dg = await startFakeDeepgram({ apiKey: 'dg-key', speakChunkDelayMs: 0, idleTimeoutMs: 10_000 });
  const openai = await startFakeOpenAI({ apiKey: 'sk-test', speechChunkDelayMs: 0 });
  const eleven = await startFakeElevenLabs({ apiKey: 'xi-key', chunkDelayMs: 0 });
  const live = await startWorker({
    vars: {
      DEEPGRAM_API_KEY: 'dg-key', DEEPGRAM_URL: dg.url, OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: openai.url,
      OPENAI_MODEL: 'gpt-test', ELEVENLABS_API_KEY: 'xi-key', ELEVENLABS_URL: eleven.url,
    },
  });
  let client;
  let stopAudio = () => {};
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const a = await live.api('POST', '/api/v1/agents', {
      name: 'Bistro', system_prompt: 'You are the receptionist of Acme Bistro.', first_message: 'Hello! How can I help?',
      voice: { provider: 'elevenlabs', voice_id: 'rachel' },
    });
    assert.equal(a.status, 201, a.text);
    const n = await live.api('POST', '/api/v1/numbers', { number: '+15550001001', agent_id: a.body.id });
    assert.equal(n.status, 201, n.text);
    const res = await sendStatusCallback(`${live.url}/voice/twilio/incoming`, TEST_VARS.TWILIO_AUTH_TOKEN, twilioCallParams({ to: '+15550001001' }));
    const xml = res.text;
    const stream = /<Stream url="([^"]+)"/.exec(xml)[1].replaceAll('&amp;', '&');
    const token = /<Parameter name="token" value="([^"]+)"\/>/.exec(xml)[1];
    const callId = /\/media\/\w+\/([^?"]+)/.exec(stream)[1];

    const page = await context.newPage();
    await page.goto(`${live.url}/#/calls/${callId}/live`);
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#live-connection', { hasText: 'connected' }).waitFor();

    const sttBefore = dg.connections.length;
    client = await TwilioMediaClient.connect(stream);
    client.connected();
    client.start({ token, call_id: callId });
    let stopped = false;
    (async () => {
      while (!stopped && client.socket.readyState === 1) {
        client.media(Buffer.alloc(160, 0xff));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    stopAudio = () => {
      stopped = true;
    };
    const stt = await dg.waitForConnection(sttBefore, 10_000);
    openai.reply({ text: 'Sure. We have a table at seven tonight.' });
    dg.say(stt, { transcript: 'I would like to book a table.', is_final: true, speech_final: true });
    await page.locator('#live-transcript li.caller', { hasText: 'I would like to book a table.' }).waitFor({ timeout: 15_000 });
    await page.locator('#live-transcript li.agent').first().waitFor({ timeout: 15_000 });
    await shot(page, 'live');
  } finally {
    stopAudio();
    client?.socket.close();
    await context.close();
    await live.stop();
    await Promise.all([dg.close(), openai.close(), eleven.close()]);
  }
});
