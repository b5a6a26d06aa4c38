// The dashboard's Endpoints page and the latency chart on a phone, in headless Chromium against
// the real worker: create an endpoint from the form (secret shown once, copied to the
// clipboard), edit its URL / filters / description, send a test event that the official
// Standard Webhooks libraries verify with the copied secret, see a failing endpoint's test
// fail with its status, reveal the secret with an admin key; then the call detail's per-turn
// latency chart at 390 px: no overflow, no overlapping labels, text at its real size.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook as SvixWebhook } from 'svix';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { startWorker, TEST_VARS, UNDIALLED_TWILIO } from './harness.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import path from 'node:path';
import { skipBrowser, launchBrowser, newPage as openPage, shotBoth, PHONE, OUT } from './browser.mjs';

let worker;
let browser;
let good;
let failing;
let call;

before(async () => {
  if (skipBrowser) return;
  [good, failing] = await Promise.all([startFakeTarget(), startFakeTarget()]);
  failing.respondWith(500);
  [worker, browser] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    launchBrowser(),
  ]);
  const agent = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You confirm appointments.' });
  assert.equal(agent.status, 201, agent.text);
  const scheduled = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675310', agent_id: agent.body.id, start_at: new Date(Date.now() + 86_400_000).toISOString(), provider: 'twilio',
  });
  assert.equal(scheduled.status, 201, scheduled.text);
  call = scheduled.body;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await Promise.all([good?.close(), failing?.close()]);
});

const newPage = (opts) => openPage(browser, worker, opts);

/** The API's view of the endpoint at `url` (lists never carry the secret). */
async function endpointAt(url) {
  const list = await worker.api('GET', '/api/v1/endpoints?limit=100');
  return list.body.data.find((e) => e.url === url);
}

/** Opens the Endpoints page from the nav and creates one through the form; returns the shown secret. */
async function createFromForm(page, { url, types = '', description = '' }) {
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByRole('heading', { name: 'Endpoints', level: 2 }).waitFor();
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add an endpoint' }) });
  await form.getByLabel('URL').fill(url);
  await form.getByLabel('Event types').fill(types);
  await form.getByLabel('Description').fill(description);
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  const notice = page.locator('#secret-notice');
  await notice.waitFor();
  assert.match(await notice.innerText(), /shown once/);
  return notice.locator('code.secret').innerText();
}

test('create an endpoint: the secret is shown once and copied; edit it; a test event is delivered and verifies', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: worker.url });
  const firstUrl = `${good.url}/first`;
  const shown = await createFromForm(page, { url: firstUrl, types: 'call.*', description: 'from the browser' });
  assert.match(shown, /^whsec_/);

  // Copy: the clipboard now holds exactly the secret the API signs with.
  await page.getByRole('button', { name: 'Copy secret' }).click();
  await page.getByRole('button', { name: 'Copy secret' }).filter({ hasText: 'Copied' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, shown);
  const created = await endpointAt(firstUrl);
  assert.ok(created, 'the API holds the new endpoint');
  assert.deepEqual(created.event_types, ['call.*']);
  assert.equal(created.secret, undefined);
  assert.equal((await worker.api('GET', `/api/v1/endpoints/${created.id}/secret`)).body.secret, copied);

  // Shown once: after a reload the page no longer has it.
  await page.reload();
  await page.getByRole('heading', { name: 'Endpoints', level: 2 }).waitFor();
  assert.equal(await page.locator('#secret-notice').count(), 0);
  assert.equal(await page.getByText(copied).count(), 0);

  // Edit URL, filters and description; the API holds what the form sent.
  let row = page.locator('#endpoints-list tr', { hasText: firstUrl });
  await row.getByRole('button', { name: 'Edit' }).click();
  const edit = page.locator('#endpoint-edit');
  assert.equal(await edit.getByLabel('URL').inputValue(), firstUrl);
  assert.equal(await edit.getByLabel('Event types').inputValue(), 'call.*');
  await edit.getByLabel('URL').fill('ftp://nope.example');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.locator('.error-box').filter({ hasText: 'url' }).waitFor();
  assert.equal(await edit.getByLabel('URL').getAttribute('aria-invalid'), 'true');
  await edit.getByLabel('URL').fill(good.url);
  await edit.getByLabel('Event types').fill('call.completed, email.*');
  await edit.getByLabel('Description').fill('edited in the dashboard');
  await shotBoth(page, 'endpoint-form').then(({ overflow }) => assert.ok(overflow <= 1, `edit form overflows by ${overflow}px`));
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });
  row = page.locator('#endpoints-list tr', { hasText: good.url });
  await row.getByText('call.completed, email.*').waitFor();
  const edited = (await worker.api('GET', `/api/v1/endpoints/${created.id}`)).body;
  assert.equal(edited.url, good.url);
  assert.deepEqual(edited.event_types, ['call.completed', 'email.*']);
  assert.equal(edited.description, 'edited in the dashboard');

  // Send a test event: the target gets one request the official libraries verify with the
  // copied secret, and the page says it was delivered, linking to the delivery.
  await row.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('#test-state', { hasText: 'delivered' }).waitFor({ timeout: 20_000 });
  assert.match(await page.locator('#test-text').innerText(), /Delivered \(HTTP 200\)/);
  assert.equal(good.deliveries.length, 1);
  const request = good.deliveries[0];
  assert.equal(request.path, '/hook');
  const raw = request.request.rawBody.toString();
  assert.doesNotThrow(() => new SvixWebhook(copied).verify(raw, request.headers));
  const payload = new StandardWebhook(copied).verify(raw, request.headers);
  assert.equal(payload.type, 'webhook.test');
  assert.equal(payload.data.test, true);
  assert.equal(payload.data.endpoint_id, created.id);
  const link = page.locator('#test-card a[href^="#/deliveries/"]');
  const deliveryId = await link.innerText();
  const delivery = (await worker.api('GET', `/api/v1/deliveries/${deliveryId}`)).body;
  assert.equal(delivery.status, 'succeeded');
  assert.equal(delivery.endpoint_id, created.id);
  assert.equal(delivery.event_id, request.id, 'webhook-id is the stored event');

  // An admin key can reveal the current secret again, with a copy button.
  await row.getByRole('button', { name: 'Show secret' }).click();
  const revealed = page.locator('#secret-notice', { hasText: 'Secret of' });
  await revealed.waitFor();
  assert.equal(await revealed.locator('code.secret').innerText(), copied);
  assert.equal(await revealed.getByRole('button', { name: 'Copy secret' }).count(), 1);

  const { overflow } = await shotBoth(page, 'endpoints-list');
  assert.ok(overflow <= 1, `endpoints page overflows by ${overflow}px at phone width`);
  await link.click();
  await page.locator('#delivery-status', { hasText: 'succeeded' }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a test event to a failing endpoint shows the failure with its status and the delivery', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await createFromForm(page, { url: failing.url });
  const row = page.locator('#endpoints-list tr', { hasText: failing.url });
  await row.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('#test-state', { hasText: 'failed' }).waitFor({ timeout: 20_000 });
  assert.match(await page.locator('#test-text').innerText(), /^Failed: HTTP 500/);
  const deliveryId = await page.locator('#test-card a[href^="#/deliveries/"]').innerText();
  const delivery = (await worker.api('GET', `/api/v1/deliveries/${deliveryId}`)).body;
  assert.ok(delivery.attempts >= 1);
  assert.equal(delivery.last_status_code, 500);
  assert.equal(delivery.endpoint_id, (await endpointAt(failing.url)).id);
  assert.ok(failing.deliveries.length >= 1 && failing.deliveries.every((d) => d.json.type === 'webhook.test'));

  // A paused endpoint's test is refused by the API, and the page shows why.
  await row.getByRole('button', { name: 'Pause' }).click();
  await row.getByText('paused').waitFor();
  await row.getByRole('button', { name: 'Send test event' }).click();
  await page.locator('.error-box', { hasText: 'endpoint_not_enabled' }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

/** Bounding boxes of the chart's labels; pairs that overlap; whether the SVG is drawn unscaled. */
function chartLayout() {
  const svgEl = document.querySelector('svg.chart');
  const box = (el) => el.getBoundingClientRect();
  const labels = [...svgEl.querySelectorAll('text')].map((t) => ({ text: t.textContent, ...box(t).toJSON() }));
  const overlaps = [];
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      const a = labels[i], b = labels[j];
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps.push(`${a.text} / ${b.text}`);
    }
  }
  const scroller = svgEl.parentElement;
  return {
    labels,
    overlaps,
    xLabels: labels.filter((l) => /^T\d+$/.test(l.text)).length,
    scale: box(svgEl).width / svgEl.viewBox.baseVal.width,
    svgRight: box(svgEl).right,
    scrollerRight: box(scroller).right,
    scrolls: scroller.scrollWidth > scroller.clientWidth + 1,
    pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
    minLabelHeight: Math.min(...labels.map((l) => l.height)),
  };
}

/** Serves the seeded call with `n` turns of latency metrics. */
async function withTurns(page, n) {
  await page.unrouteAll();
  await page.route(`**/api/v1/calls/${call.id}`, async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.status = 'completed';
    body.metrics = {
      turns: Array.from({ length: n }, (_, turn) => ({
        turn,
        metrics: { llm_first_token_ms: 200 + turn * 17, tts_first_byte_ms: 90 + (turn % 5) * 11, first_audio_ms: 420 + turn * 23, first_mark_ms: 900 + turn * 41 },
      })),
    };
    await route.fulfill({ response: res, json: body });
  });
}

test('the call detail latency chart is readable at 390 px: no overflow, no overlapping labels, real-size text', { skip: skipBrowser }, async () => {
  const page = await newPage({ ...PHONE });
  await withTurns(page, 12);
  await page.goto(`${worker.url}/#/calls/${call.id}`);
  await page.getByRole('heading', { name: `Call ${call.id}` }).waitFor();
  await page.locator('svg.chart rect.bar').first().waitFor();
  assert.equal(await page.locator('svg.chart rect.bar').count(), 48);
  let layout = await page.evaluate(chartLayout);
  assert.deepEqual(layout.overlaps, [], 'no two labels overlap');
  assert.ok(layout.pageOverflow <= 1, `page overflows by ${layout.pageOverflow}px`);
  assert.ok(layout.svgRight <= layout.scrollerRight + 0.5, 'the chart fits its card');
  assert.equal(layout.scrolls, false, '12 turns fit without scrolling');
  assert.ok(Math.abs(layout.scale - 1) < 0.01, `drawn at its pixel size, not scaled by ${layout.scale}`);
  assert.ok(layout.minLabelHeight >= 11, `labels are legible (${layout.minLabelHeight}px tall)`);
  assert.ok(layout.xLabels >= 4 && layout.xLabels <= 12, `${layout.xLabels} turn labels`);
  assert.ok(layout.labels.some((l) => l.text === 'T11'), 'the last turn is labelled');
  // The legend wraps inside the card.
  const legend = await page.locator('ul.legend').evaluate((el) => el.scrollWidth - el.clientWidth);
  assert.ok(legend <= 1);
  const shots = await shotBoth(page, 'call-detail-chart');
  assert.ok(shots.overflow <= 1);
  // The text alternative: every turn in a table.
  await page.getByText('Latency figures as a table').click();
  assert.equal(await page.locator('figure.chart-figure table tbody tr').count(), 12);

  // Back at phone size after the desktop screenshot: redrawn for the narrow box again.
  await page.setViewportSize(PHONE);
  await page.waitForFunction(() => document.querySelector('svg.chart').getBoundingClientRect().width < 400);
  layout = await page.evaluate(chartLayout);
  assert.deepEqual(layout.overlaps, []);
  await page.locator('figure.chart-figure').screenshot({ path: path.join(OUT, 'dashboard-chart-12-turns-phone.png') });

  // Sixty turns cannot fit 390 px: the chart scrolls inside its own box, the page does not.
  await withTurns(page, 60);
  await page.reload();
  await page.locator('svg.chart rect.bar').first().waitFor();
  layout = await page.evaluate(chartLayout);
  assert.deepEqual(layout.overlaps, [], 'no two labels overlap');
  assert.ok(layout.pageOverflow <= 1, `page overflows by ${layout.pageOverflow}px`);
  assert.equal(layout.scrolls, true);
  assert.ok(layout.minLabelHeight >= 11);
  assert.equal(await page.getByRole('region', { name: /Latency chart/ }).getAttribute('tabindex'), '0');
  await page.locator('figure.chart-figure').screenshot({ path: path.join(OUT, 'dashboard-chart-60-turns-phone.png') });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
