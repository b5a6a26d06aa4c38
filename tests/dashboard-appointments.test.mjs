// The dashboard's appointments page in headless Chromium against the real worker in workerd: the
// list shows each appointment at its calendar's wall-clock time (a browser in another zone sees
// both), the detail shows the invitations sent (fake Resend), an operate key reschedules (a time
// typed in the calendar's zone) and cancels, a viewer sees the controls disabled. Screenshots go
// to test-output/ (desktop and phone, no overflow at 390 px).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, UNDIALLED_TWILIO } from './harness.mjs';
import { skipBrowser, launchBrowser, newPage as openPage, shotBoth } from './browser.mjs';
import { startFakeResend } from './fakes/resend.mjs';

const EVERY_DAY = Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => [d, [['09:00', '17:00']]]));

let worker;
let browser;
let resend;
let agent;
let viewerKey;

before(async () => {
  if (skipBrowser) return;
  resend = await startFakeResend({ apiKey: 're_test_key' });
  [worker, browser] = await Promise.all([
    startWorker({ vars: { ...UNDIALLED_TWILIO, RESEND_API_URL: resend.url, RESEND_API_KEY: 're_test_key', EMAIL_FROM: 'Acme Dental <bookings@acme.example>' } }),
    launchBrowser(),
  ]);
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Front desk', system_prompt: 'You book appointments.',
    calendar: { time_zone: 'Europe/Berlin', weekly: EVERY_DAY, slot_minutes: 30, buffer_minutes: 15, horizon_days: 14 },
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
  const key = await worker.api('POST', '/api/v1/api-keys', { name: 'read only', role: 'viewer' });
  assert.equal(key.status, 201, key.text);
  viewerKey = key.body.key;
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await resend?.close();
});

const newPage = async (opts) => {
  const page = await openPage(browser, worker, { context: { timezoneId: 'America/New_York' }, ...opts });
  page.on('dialog', (d) => d.accept());
  return page;
};

/** `YYYY-MM-DD` in Berlin, `days` from today. */
const berlinDay = (days) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(new Date(Date.now() + days * 86_400_000));

/** The instant of Berlin wall-clock `hhmm` on `day`. */
function berlinInstant(day, hhmm) {
  for (const offset of ['+01:00', '+02:00']) {
    const at = `${day}T${hhmm}:00${offset}`;
    const wall = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(at));
    if (wall === hhmm) return at;
  }
  throw new Error(`no ${hhmm} on ${day}`);
}

async function book(day, hhmm, extra = {}) {
  const res = await worker.api('POST', '/api/v1/appointments', { agent_id: agent.id, start_at: berlinInstant(day, hhmm), ...extra });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

test('the list and detail show the calendar\'s time; an operate key reschedules and cancels; the invitations are listed', { skip: skipBrowser }, async () => {
  const day = berlinDay(3);
  const ada = await book(day, '09:45', { name: 'Ada Lovelace', caller_number: '+14155550301', email: 'ada@example.com', note: 'Check-up' });
  await book(day, '10:30', { name: 'Grace Hopper', caller_number: '+14155550302' });
  await eventually(() => resend.emails.length === 1, { message: 'the booking invitation' });

  const page = await newPage();
  await page.locator('#nav').getByRole('link', { name: 'Appointments' }).click();
  await page.getByRole('heading', { name: 'Appointments', level: 2 }).waitFor();
  const row = page.locator('#appointments-list tr', { hasText: 'Ada Lovelace' });
  await row.waitFor();
  // The calendar's own wall clock, labelled with its zone, then the viewer's (New York).
  const starts = await row.locator('td[data-label="Starts"]').innerText();
  assert.match(starts, /9:45\s?AM \(Europe\/Berlin\)/, starts);
  assert.match(starts, /your time \(America\/New_York\)/, starts);
  assert.equal(await row.locator('.badge').innerText(), 'booked');
  assert.equal(await page.locator('#appointments-list tr', { hasText: 'Grace Hopper' }).count(), 1);
  const list = await shotBoth(page, 'appointments-list');
  assert.ok(list.overflow <= 1, `list overflows by ${list.overflow}px at phone width`);

  await row.getByRole('link', { name: ada.id }).click();
  await page.getByRole('heading', { name: `Appointment ${ada.id}`, level: 2 }).waitFor();
  const invitations = page.locator('section', { has: page.getByRole('heading', { name: 'Invitations' }) });
  await invitations.locator('tr', { hasText: 'scheduled' }).waitFor();
  const form = page.getByRole('form', { name: 'Reschedule' });
  assert.equal(await form.getAttribute('data-needs'), 'operate');
  assert.equal(await form.getByLabel('New start').inputValue(), `${day}T09:45`, 'the form starts from the calendar\'s wall clock');
  const detail = await shotBoth(page, 'appointments-detail');
  assert.ok(detail.overflow <= 1, `detail overflows by ${detail.overflow}px at phone width`);

  // A slot another appointment holds is refused with the server's reason, shown in the form.
  await form.getByLabel('New start').fill(`${day}T10:30`);
  await form.getByRole('button', { name: 'Reschedule' }).click();
  await form.locator('.error-box', { hasText: 'slot_taken' }).waitFor();
  // A free slot, typed in Berlin time from a New York browser.
  await form.getByLabel('New start').fill(`${day}T11:15`);
  await form.getByRole('button', { name: 'Reschedule' }).click();
  await page.locator('#status', { hasText: `Appointment ${ada.id} moved` }).waitFor();
  const moved = (await worker.api('GET', `/api/v1/appointments/${ada.id}`)).body;
  assert.equal(Date.parse(moved.start_at), Date.parse(berlinInstant(day, '11:15')));
  assert.equal(moved.sequence, 1);
  await eventually(() => resend.emails.length === 2, { message: 'the updated invitation' });

  await page.getByRole('button', { name: 'Cancel appointment' }).click();
  await page.locator('#status', { hasText: `Appointment ${ada.id} canceled` }).waitFor();
  await page.locator('dl.facts .badge', { hasText: 'canceled' }).waitFor();
  assert.equal((await worker.api('GET', `/api/v1/appointments/${ada.id}`)).body.status, 'canceled');
  assert.equal(await page.getByRole('form', { name: 'Reschedule' }).count(), 0, 'a canceled appointment has no reschedule form');
  // The cancellation is queued with the change itself, so the page drawn after it lists it.
  await invitations.locator('tr', { hasText: 'canceled' }).waitFor();
  const kinds = await invitations.locator('td[data-label="Kind"]').allInnerTexts();
  assert.deepEqual(kinds, ['scheduled', 'rescheduled', 'canceled']);
  assert.deepEqual(page.errors, []);
});

test('a viewer key sees appointments; reschedule and cancel carry data-needs="operate" and are disabled', { skip: skipBrowser }, async () => {
  const appointment = await book(berlinDay(4), '13:30', { name: 'Viewer check' });
  const page = await newPage({ key: viewerKey });
  await page.goto(`${worker.url}/#/appointments/${appointment.id}`);
  await page.getByRole('heading', { name: `Appointment ${appointment.id}`, level: 2 }).waitFor();
  const cancel = page.getByRole('button', { name: 'Cancel appointment' });
  assert.equal(await cancel.getAttribute('data-needs'), 'operate');
  assert.ok(await cancel.isDisabled(), 'cancel is disabled for a viewer');
  const form = page.getByRole('form', { name: 'Reschedule' });
  assert.equal(await form.getAttribute('data-needs'), 'operate');
  assert.ok(await form.getByRole('button', { name: 'Reschedule' }).isDisabled(), 'reschedule is disabled for a viewer');
  assert.equal((await worker.api('GET', `/api/v1/appointments/${appointment.id}`)).body.status, 'booked');
  assert.deepEqual(page.errors, []);
});
