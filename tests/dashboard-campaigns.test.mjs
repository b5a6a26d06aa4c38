// The Campaigns page in headless Chromium against the real worker: start a campaign by
// uploading a CSV file (its refused rows reported by line), see its progress, pause / resume /
// cancel it, download its results; a viewer sees the list without the controls. Desktop and
// phone screenshots, no horizontal overflow at 390 px.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, UNDIALLED_TWILIO } from './harness.mjs';
import { skipBrowser, launchBrowser, newPage as openPage, shotBoth } from './browser.mjs';

let worker;
let browser;

before(async () => {
  [worker, browser] = await Promise.all([
    startWorker({ vars: { DEFAULT_FROM_NUMBER: '+15017122661', ...UNDIALLED_TWILIO } }),
    skipBrowser ? null : launchBrowser(),
  ]);
  const agent = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You call about renewals.' });
  assert.equal(agent.status, 201, agent.text);
});

after(async () => {
  await browser?.close();
  await worker?.stop();
});

const newPage = (opts) => openPage(browser, worker, opts);

test('start a campaign from a CSV file, follow it, pause, resume, export and cancel it', { skip: skipBrowser }, async () => {
  const page = await newPage();
  await page.goto(`${worker.url}/#/campaigns`);
  await page.getByRole('heading', { name: 'Campaigns', level: 2 }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('Spring renewals');
  const csv = 'phone,name,time_zone,plan\n+14155550100,"Lee, Jordan",America/Los_Angeles,gold\n+12125550100,Ana,America/New_York,silver\n12345,Bad,America/New_York,x\n';
  await page.getByLabel('Contacts (CSV)').setInputFiles({ name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  // Saturday and Sunday only: nobody is dialled while the test looks (unless it is a weekend).
  for (const d of ['mon', 'tue', 'wed', 'thu', 'fri']) await page.getByLabel(d, { exact: true }).uncheck();
  await page.getByLabel('sat', { exact: true }).check();
  await page.getByRole('button', { name: 'Start campaign' }).click();
  await page.getByText('“Spring renewals”: 2 contacts, 1 not dialled').waitFor();
  // The form is ready for the next campaign, with its starting values.
  assert.equal(await page.getByLabel('Calls per minute').inputValue(), '10');
  assert.ok(await page.getByLabel('mon', { exact: true }).isChecked());
  await page.getByText('line 4:').waitFor();

  const stored = (await worker.api('GET', '/api/v1/campaigns')).body.data[0];
  assert.equal(stored.name, 'Spring renewals');
  assert.deepEqual(stored.window.days, ['sat']);
  assert.equal(stored.progress.invalid, 1);
  const row = page.locator(`tr[data-id="${stored.id}"]`);
  const status = row.locator('td[data-label="Status"]');
  await status.getByText('active').waitFor();
  assert.equal(await row.locator('progress').getAttribute('max'), '3');

  const { overflow } = await shotBoth(page, 'campaigns');
  assert.ok(overflow <= 0, `no horizontal overflow at 390 px (${overflow} px)`);

  await row.getByRole('button', { name: 'Pause Spring renewals' }).click();
  await status.getByText('paused').waitFor();
  await row.getByRole('button', { name: 'Resume Spring renewals' }).click();
  await status.getByText('active').waitFor();

  const download = page.waitForEvent('download');
  await row.getByRole('button', { name: 'Download results of Spring renewals' }).click();
  const file = await download;
  const text = await (await file.createReadStream()).toArray().then((chunks) => Buffer.concat(chunks).toString());
  assert.match(text, /^line,phone,name,email,status/);
  assert.ok(text.includes('"Lee, Jordan"'));

  page.once('dialog', (d) => d.accept());
  await row.getByRole('button', { name: 'Cancel Spring renewals' }).click();
  await status.getByText('canceled').waitFor();
  await eventually(async () => (await worker.api('GET', `/api/v1/campaigns/${stored.id}`)).body.status === 'canceled');
  assert.deepEqual(page.errors, []);
});

test('a viewer sees campaigns but no controls that change them', { skip: skipBrowser }, async () => {
  const viewer = (await worker.api('POST', '/api/v1/api-keys', { name: 'campaign viewer', role: 'viewer' })).body.key;
  const page = await newPage({ key: viewer });
  await page.goto(`${worker.url}/#/campaigns`);
  await page.getByRole('heading', { name: 'Campaigns', level: 2 }).waitFor();
  await page.getByText('Spring renewals').first().waitFor();
  const startButton = page.getByRole('button', { name: 'Start campaign' });
  assert.ok((await startButton.count()) === 0 || (await startButton.isDisabled()), 'viewers cannot start a campaign');
  assert.deepEqual(page.errors, []);
});
