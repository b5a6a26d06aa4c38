// The calls page's "Import .ics" control in headless Chromium against the real worker: a
// calendar file chosen in the browser is posted as text/calendar, its events become scheduled
// calls (listed), a refused event is shown with its line; a viewer's control is disabled.
// Screenshots (desktop + phone, no horizontal overflow at 390 px) go to test-output/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, UNDIALLED_TWILIO } from './harness.mjs';
import { skipBrowser, launchBrowser, newPage, shotBoth } from './browser.mjs';

let worker, browser, agent;

before(async () => {
  if (skipBrowser) return;
  [worker, browser] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    launchBrowser(),
  ]);
  const created = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You confirm appointments.' });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
});

const ICS = [
  'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//Google Inc//Google Calendar 70.9054//EN',
  'BEGIN:VEVENT', 'UID:dash-1@example.com', 'DTSTART;TZID=Europe/Berlin:20300715T090000', 'SUMMARY:Call Ada', 'ATTENDEE;CN=Ada:tel:+49-30-1234567', 'END:VEVENT',
  'BEGIN:VEVENT', 'UID:dash-2@example.com', 'DTSTART:20300715T150000Z', 'X-PHONE:+14155550100', 'END:VEVENT',
  'BEGIN:VEVENT', 'UID:dash-3@example.com', 'DTSTART:20300715T160000Z', 'LOCATION:Room 4', 'END:VEVENT',
  'END:VCALENDAR',
].join('\r\n') + '\r\n';

test('an .ics file chosen on the calls page becomes scheduled calls; a refused event shows its line', { skip: skipBrowser }, async () => {
  const page = await newPage(browser, worker);
  await page.getByText('Import calls from a calendar (.ics)').click();
  await page.getByLabel('Agent making the calls').selectOption(agent.id);
  await page.getByLabel('Calendar file (.ics)').setInputFiles({ name: 'calls.ics', mimeType: 'text/calendar', buffer: Buffer.from(ICS) });
  await page.getByRole('button', { name: 'Import .ics' }).click();
  const result = page.locator('#ics-result');
  await result.getByText('2 created, 0 updated, 0 unchanged, 1 refused.').waitFor();
  assert.match(await result.locator('ul.ics-refused li').innerText(), /^Line 15 \(dash-3@example\.com\): no number to call/);
  const { overflow } = await shotBoth(page, 'calls-ics-import');
  assert.ok(overflow <= 0, `no horizontal overflow at 390 px (${overflow})`);
  const calls = await worker.api('GET', '/api/v1/calls');
  const imported = calls.body.data.filter((c) => c.ical_uid?.startsWith('dash-'));
  assert.deepEqual(imported.map((c) => c.ical_uid).sort(), ['dash-1@example.com', 'dash-2@example.com']);
  await result.getByRole('button', { name: 'Show the calls' }).click();
  for (const c of imported) await page.locator(`#calls-list tr[data-id="${c.id}"]`).waitFor();
  // The same file again: nothing new.
  await page.getByText('Import calls from a calendar (.ics)').click();
  await page.getByLabel('Calendar file (.ics)').setInputFiles({ name: 'calls.ics', mimeType: 'text/calendar', buffer: Buffer.from(ICS) });
  await page.getByRole('button', { name: 'Import .ics' }).click();
  await page.locator('#ics-result').getByText('0 created, 0 updated, 2 unchanged, 1 refused.').waitFor();
});

test("a viewer's import control is disabled", { skip: skipBrowser }, async () => {
  const key = await worker.api('POST', '/api/v1/api-keys', { name: 'viewer', role: 'viewer' });
  assert.equal(key.status, 201, key.text);
  const page = await newPage(browser, worker, { key: key.body.key });
  await page.getByText('Import calls from a calendar (.ics)').click();
  assert.ok(await page.getByRole('button', { name: 'Import .ics' }).isDisabled());
  assert.ok(await page.getByLabel('Calendar file (.ics)').isDisabled());
});
