// Reminders before a scheduled call (issue 15 §4): an agent's `reminders: {before_minutes,
// channels}` plans one row per offset when a call is scheduled (a time already passed is
// skipped), a reschedule moves them, a cancel cancels them, and the sweep (the scheduler's alarm
// and the cron, driven here through the harness's scheduled-event trigger) hands each due one to
// the email outbox, which sends it to the fake Resend.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, sleep, TEST_VARS } from './harness.mjs';
import { startFakeTwilio } from './fakes/twilio.mjs';
import { startFakeResend } from './fakes/resend.mjs';

const ACCOUNT_SID = 'AC' + '8'.repeat(32);
const AUTH_TOKEN = TEST_VARS.TWILIO_AUTH_TOKEN;

let worker, twilio, resend;
let otherKey;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  resend = await startFakeResend({ apiKey: 're_test_key' });
  worker = await startWorker({
    vars: {
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      RESEND_API_URL: resend.url, RESEND_API_KEY: 're_test_key', EMAIL_FROM: 'Acme Calls <calls@acme.example>',
      DEFAULT_FROM_NUMBER: '+15017122661',
    },
  });
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  otherKey = tenant.body.api_key.key;
});

after(async () => {
  await worker?.stop();
  await Promise.all([twilio?.close(), resend?.close()]);
});

const at = (ms) => new Date(ms).toISOString();
const remindersTo = (email) => resend.emails.filter((e) => e.body.to?.includes(email) && /^Reminder:/.test(e.body.subject));
const textsTo = (number) => [...twilio.messages.values()].filter((m) => m.to === number && /^Reminder:/.test(m.body));
const REMINDERS = { before_minutes: [1, 1440], channels: ['email', 'sms'] };
const NUMBERS = { moved: '+15558675311', cancelled: '+15558675312', other: '+15558675313' };

async function agentFor(key) {
  const res = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You confirm appointments.', reminders: REMINDERS }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  assert.deepEqual(res.body.reminders, { before_minutes: [1440, 1], channels: ['email', 'sms'] });
  return res.body;
}

async function schedule(agent, email, to, startMs, key) {
  const res = await worker.api('POST', '/api/v1/calls', { to, agent_id: agent.id, start_at: at(startMs), contact: { name: 'Jo', email } }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  return res.body;
}

test('reminder settings are validated', async () => {
  for (const [reminders, field] of [
    [{ before_minutes: [0] }, 'reminders.before_minutes'],
    [{ before_minutes: [60, 60] }, 'reminders.before_minutes'],
    [{ before_minutes: [60], channels: ['fax'] }, 'reminders.channels'],
    [{ before_minutes: [60], channels: ['sms', 'sms'] }, 'reminders.channels'],
    [{ before_minutes: [60], channels: 'email' }, 'reminders.channels'],
  ]) {
    const res = await worker.api('POST', '/api/v1/agents', { name: 'x', system_prompt: 'P', reminders });
    assert.equal(res.status, 422, res.text);
    assert.equal(res.body.error.details[0].field, field, res.text);
  }
});

test('planned when scheduled (a passed time skipped), moved by a reschedule, cancelled with the call; another tenant unaffected', async () => {
  const mine = await agentFor();
  const theirs = await agentFor(otherKey);
  const t0 = Date.now();
  // Each call starts 70 s out: its 1-minute reminder is due in 10 s (time enough for the moves
  // below, a few requests), its 1-day one has passed.
  const DUE = 10_000;
  const moved = await schedule(mine, 'moved@example.com', NUMBERS.moved, t0 + 60_000 + DUE);
  const cancelled = await schedule(mine, 'cancelled@example.com', NUMBERS.cancelled, t0 + 60_000 + DUE);
  const other = await schedule(theirs, 'other@example.com', NUMBERS.other, t0 + 60_000 + DUE, otherKey);

  const rows = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body.reminders;
  assert.deepEqual(rows.map((r) => [r.channel, r.before_minutes, r.status]), [
    ['email', 1440, 'skipped'], ['sms', 1440, 'skipped'], ['email', 1, 'pending'], ['sms', 1, 'pending'],
  ]);
  assert.equal(rows[2].due_at, at(t0 + DUE));

  // Moved 20 s later: its reminder is now due 20 s after the old time, once the old time is
  // seen to pass without it. The other is cancelled.
  const newStart = t0 + 60_000 + DUE + 20_000;
  const patched = await worker.api('PATCH', `/api/v1/calls/${moved.id}`, { start_at: at(newStart) });
  assert.equal(patched.status, 200, patched.text);
  const movedRows = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body.reminders;
  assert.equal(movedRows.find((r) => r.before_minutes === 1).due_at, at(newStart - 60_000));
  assert.equal(movedRows.find((r) => r.before_minutes === 1).status, 'pending');
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${cancelled.id}`)).status, 200);
  const cancelledRows = (await worker.api('GET', `/api/v1/calls/${cancelled.id}`)).body.reminders;
  assert.deepEqual(cancelledRows.map((r) => r.status), ['cancelled', 'cancelled', 'cancelled', 'cancelled']);
  // Another tenant neither sees nor moves them.
  assert.equal((await worker.api('GET', `/api/v1/calls/${moved.id}`, undefined, { key: otherKey })).status, 404);
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${other.id}`)).status, 404);
  assert.ok(Date.now() < t0 + DUE, 'the moves were done before the old due time (a very slow machine: raise DUE)');

  // Past the old due time: the other tenant's reminder went out, neither of ours did.
  const otherReminder = await eventually(async () => {
    await worker.scheduled();
    return remindersTo('other@example.com')[0];
  }, { timeout: 60_000, interval: 1_000, message: "the other tenant's reminder" });
  assert.ok(otherReminder.at >= t0 + DUE, 'not before its time');
  assert.match(otherReminder.body.subject, /^Reminder: call on /);
  assert.equal(otherReminder.idempotencyKey, `reminder-email-1-${Date.parse(other.start_at)}-${other.id}`);
  // And its text, through the message outbox, from the call's caller id.
  const otherText = await eventually(() => textsTo(NUMBERS.other)[0], { timeout: 20_000, message: "the other tenant's text" });
  assert.equal(otherText.from, '+15017122661');
  const hhmmOther = new Date(Date.parse(other.start_at)).toISOString().slice(11, 16);
  assert.match(otherText.body, new RegExp(`^Reminder: your call with Ava is at .*, ${hhmmOther} \\(UTC\\)\\. Reply STOP to opt out\\.$`));
  await sleep(3_000);
  await worker.scheduled();
  assert.ok(Date.now() < newStart - 60_000, 'still before the new due time (a very slow machine: move it further)');
  assert.deepEqual(remindersTo('moved@example.com'), [], 'nothing for the old time');
  assert.deepEqual(textsTo(NUMBERS.moved), [], 'no text for the old time');
  assert.deepEqual(remindersTo('cancelled@example.com'), [], 'nothing for a cancelled call');
  assert.deepEqual(textsTo(NUMBERS.cancelled), [], 'no text for a cancelled call');

  // The moved call's reminder goes out for its new time, once.
  const reminder = await eventually(async () => {
    await worker.scheduled();
    return remindersTo('moved@example.com')[0];
  }, { timeout: 120_000, interval: 1_000, message: 'the moved reminder' });
  assert.ok(reminder.at >= newStart - 60_000, 'not before its new time');
  assert.equal(reminder.idempotencyKey, `reminder-email-1-${newStart}-${moved.id}`);
  const hhmm = new Date(newStart).toISOString().slice(11, 16);
  assert.match(reminder.body.subject, new RegExp(`${hhmm} \\(UTC\\)$`));
  assert.match(reminder.body.text, /A reminder: Ava will call you at \+15558675311/);
  const text = await eventually(() => textsTo(NUMBERS.moved)[0], { timeout: 20_000, message: 'the moved text' });
  assert.match(text.body, new RegExp(`, ${hhmm} \\(UTC\\)\\.`));
  await worker.scheduled();
  await sleep(1_000);
  assert.equal(remindersTo('moved@example.com').length, 1, 'sent once');
  assert.equal(textsTo(NUMBERS.moved).length, 1, 'texted once');
  assert.deepEqual(remindersTo('cancelled@example.com'), []);
  assert.deepEqual(textsTo(NUMBERS.cancelled), []);
  const after = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body;
  const sent = after.reminders.find((r) => r.before_minutes === 1 && r.channel === 'email');
  assert.equal(sent.status, 'queued');
  const sentText = after.reminders.find((r) => r.before_minutes === 1 && r.channel === 'sms');
  assert.equal(sentText.status, 'queued');
  assert.match(sentText.message_id, /^msg_/);
  const email = after.emails.find((e) => e.id === sent.email_id);
  assert.equal(email?.kind, 'reminder');
  assert.equal(email?.status, 'sent');
});

test('a call without a contact e-mail gets only its text reminders', async () => {
  const agent = await agentFor();
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: at(Date.now() + 3_600_000) });
  assert.equal(res.status, 201, res.text);
  const rows = (await worker.api('GET', `/api/v1/calls/${res.body.id}`)).body.reminders;
  assert.deepEqual(rows.map((r) => [r.channel, r.before_minutes, r.status]), [['sms', 1440, 'skipped'], ['sms', 1, 'pending']]);
});

test('appointments get the agent\'s reminders: planned with the booking, moved by a reschedule (sent for the new time only), cancelled with a cancel', async () => {
  const SLOT = 5 * 60_000;
  const calendar = { time_zone: 'UTC', weekly: Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => [d, [['00:00', '24:00']]])), slot_minutes: 5, buffer_minutes: 0 };
  const now = Date.now();
  // `early` is the first 5-minute slot at least 5 minutes out, `late` the one after it; the
  // offset makes a reminder for `early` due 40–100 s from now (time enough for the bookings, the
  // reschedule, the cancel and their D1 checks), one for `late` 5 minutes later.
  const early = Math.ceil((now + SLOT) / SLOT) * SLOT;
  const late = early + SLOT;
  const before = Math.floor((early - now - 40_000) / 60_000);
  const reminders = { before_minutes: [before, 30 * 24 * 60], channels: ['email', 'sms'] };
  const makeAgent = async (name) => {
    const res = await worker.api('POST', '/api/v1/agents', { name, system_prompt: 'You book visits.', calendar, reminders });
    assert.equal(res.status, 201, res.text);
    return res.body;
  };
  const clinic = await makeAgent('Clinic');
  const other = await makeAgent('Dentist');
  const book = async (agent, start, email, caller) => {
    const res = await worker.api('POST', '/api/v1/appointments', { agent_id: agent.id, start_at: at(start), name: 'Jo', email, caller_number: caller });
    assert.equal(res.status, 201, res.text);
    return res.body;
  };
  const rowsOf = async (id) => (await worker.d1(`SELECT subject, call_id, channel, before_minutes, start_at, due_at, status FROM reminders WHERE appointment_id = '${id}' ORDER BY channel, before_minutes`));

  const moved = await book(clinic, late, 'moved-appt@example.com', '+15558675321');
  const cancelled = await book(other, early, 'cancelled-appt@example.com', '+15558675322');
  const booked = await rowsOf(moved.id);
  assert.deepEqual(booked.map((r) => [r.subject, r.call_id, r.channel, r.before_minutes, r.start_at, r.due_at, r.status]), [
    ['appointment', null, 'email', before, late, late - before * 60_000, 'pending'],
    ['appointment', null, 'email', 43200, late, late - 43200 * 60_000, 'skipped'],
    ['appointment', null, 'sms', before, late, late - before * 60_000, 'pending'],
    ['appointment', null, 'sms', 43200, late, late - 43200 * 60_000, 'skipped'],
  ]);

  const res = await worker.api('POST', `/api/v1/appointments/${moved.id}/reschedule`, { start_at: at(early) });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual((await rowsOf(moved.id)).map((r) => [r.channel, r.before_minutes, r.start_at, r.due_at, r.status]), [
    ['email', before, early, early - before * 60_000, 'pending'],
    ['email', 43200, early, early - 43200 * 60_000, 'skipped'],
    ['sms', before, early, early - before * 60_000, 'pending'],
    ['sms', 43200, early, early - 43200 * 60_000, 'skipped'],
  ]);
  assert.equal((await worker.api('POST', `/api/v1/appointments/${cancelled.id}/cancel`)).status, 200);
  assert.deepEqual((await rowsOf(cancelled.id)).map((r) => r.status), ['cancelled', 'cancelled', 'cancelled', 'cancelled']);
  assert.ok(Date.now() < early - before * 60_000, 'the moves were done before the reminders were due (a very slow machine: raise the offset)');

  // Due for the new time: the email (the appointment's invitation wording) and the text go out once.
  const reminder = await eventually(async () => {
    await worker.scheduled();
    return remindersTo('moved-appt@example.com')[0];
  }, { timeout: 150_000, interval: 1_000, message: 'the moved appointment\'s reminder' });
  assert.ok(reminder.at >= early - before * 60_000, 'not before its time');
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
  assert.match(reminder.body.subject, /^Reminder: appointment on /);
  assert.ok(reminder.body.subject.includes(hhmm(early)), reminder.body.subject);
  assert.equal(reminder.idempotencyKey, `reminder-email-${before}-${early}-${moved.id}`);
  const text = await eventually(() => textsTo('+15558675321')[0], { timeout: 20_000, message: 'the appointment text' });
  assert.equal(text.from, '+15017122661');
  assert.match(text.body, new RegExp(`^Reminder: your appointment with Clinic is at .*, ${hhmm(early)} \\(UTC\\)\\. Reply STOP to opt out\\.$`));
  await sleep(2_000);
  await worker.scheduled();
  await sleep(1_000);
  assert.equal(remindersTo('moved-appt@example.com').length, 1, 'sent once, for the new time only');
  assert.equal(textsTo('+15558675321').length, 1, 'texted once');
  assert.deepEqual(remindersTo('cancelled-appt@example.com'), [], 'nothing for a cancelled appointment');
  assert.deepEqual(textsTo('+15558675322'), [], 'no text for a cancelled appointment');
  const after = await rowsOf(moved.id);
  assert.deepEqual(after.map((r) => r.status), ['queued', 'skipped', 'queued', 'skipped']);
  const emails = (await worker.api('GET', `/api/v1/appointments/${moved.id}`)).body.emails;
  assert.deepEqual(emails.map((e) => e.kind).sort(), ['reminder', 'rescheduled', 'scheduled']);
});
