// Reminders before a scheduled call (issue 15 §4): an agent's `reminders: {before_minutes,
// channels}` plans one row per offset when a call is scheduled (a time already passed is
// skipped), a reschedule moves them, a cancel cancels them, and the sweep (the scheduler's alarm
// and the cron, driven here through the harness's scheduled-event trigger) hands each due one to
// the email outbox, which sends it to the fake Resend.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, sleep } from './harness.mjs';
import { startFakeTwilio } from './fakes/twilio.mjs';
import { startFakeResend } from './fakes/resend.mjs';

const ACCOUNT_SID = 'AC' + '8'.repeat(32);
const AUTH_TOKEN = 'reminders-auth-token';

let worker, twilio, resend;
let otherKey;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  resend = await startFakeResend({ apiKey: 're_test_key' });
  worker = await startWorker({
    vars: {
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_AUTH_TOKEN: AUTH_TOKEN,
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
const REMINDERS = { before_minutes: [1, 1440], channels: ['email'] };

async function agentFor(key) {
  const res = await worker.api('POST', '/api/v1/agents', { name: 'Ava', system_prompt: 'You confirm appointments.', reminders: REMINDERS }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  assert.deepEqual(res.body.reminders, { before_minutes: [1440, 1], channels: ['email'] });
  return res.body;
}

async function schedule(agent, email, startMs, key) {
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: at(startMs), contact: { name: 'Jo', email } }, key ? { key } : {});
  assert.equal(res.status, 201, res.text);
  return res.body;
}

test('reminder settings are validated', async () => {
  for (const [reminders, field] of [
    [{ before_minutes: [0] }, 'reminders.before_minutes'],
    [{ before_minutes: [60, 60] }, 'reminders.before_minutes'],
    [{ before_minutes: [60], channels: ['fax'] }, 'reminders.channels'],
    [{ before_minutes: [60], channels: ['sms'] }, 'reminders.channels'],
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
  // Each call starts 90 s out: its 1-minute reminder is due in 30 s, its 1-day one has passed.
  const moved = await schedule(mine, 'moved@example.com', t0 + 90_000);
  const cancelled = await schedule(mine, 'cancelled@example.com', t0 + 90_000);
  const other = await schedule(theirs, 'other@example.com', t0 + 90_000, otherKey);

  const rows = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body.reminders;
  assert.deepEqual(rows.map((r) => [r.channel, r.before_minutes, r.status]), [['email', 1440, 'skipped'], ['email', 1, 'pending']]);
  assert.equal(rows[1].due_at, at(t0 + 30_000));

  // Moved 60 s later: its reminder is now due in 90 s. The other is cancelled.
  const newStart = t0 + 150_000;
  const patched = await worker.api('PATCH', `/api/v1/calls/${moved.id}`, { start_at: at(newStart) });
  assert.equal(patched.status, 200, patched.text);
  const movedRows = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body.reminders;
  assert.equal(movedRows.find((r) => r.before_minutes === 1).due_at, at(newStart - 60_000));
  assert.equal(movedRows.find((r) => r.before_minutes === 1).status, 'pending');
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${cancelled.id}`)).status, 200);
  const cancelledRows = (await worker.api('GET', `/api/v1/calls/${cancelled.id}`)).body.reminders;
  assert.deepEqual(cancelledRows.map((r) => r.status), ['cancelled', 'cancelled']);
  // Another tenant neither sees nor moves them.
  assert.equal((await worker.api('GET', `/api/v1/calls/${moved.id}`, undefined, { key: otherKey })).status, 404);
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${other.id}`)).status, 404);

  // Past the old due time: the other tenant's reminder went out, neither of ours did.
  const otherReminder = await eventually(async () => {
    await worker.scheduled();
    return remindersTo('other@example.com')[0];
  }, { timeout: 60_000, interval: 2_000, message: "the other tenant's reminder" });
  assert.ok(otherReminder.at >= t0 + 30_000, 'not before its time');
  assert.match(otherReminder.body.subject, /^Reminder: call on /);
  assert.equal(otherReminder.idempotencyKey, `reminder-email-1-${Date.parse(other.start_at)}-${other.id}`);
  await sleep(3_000);
  await worker.scheduled();
  assert.deepEqual(remindersTo('moved@example.com'), [], 'nothing for the old time');
  assert.deepEqual(remindersTo('cancelled@example.com'), [], 'nothing for a cancelled call');

  // The moved call's reminder goes out for its new time, once.
  const reminder = await eventually(async () => {
    await worker.scheduled();
    return remindersTo('moved@example.com')[0];
  }, { timeout: 120_000, interval: 2_000, message: 'the moved reminder' });
  assert.ok(reminder.at >= newStart - 60_000, 'not before its new time');
  assert.equal(reminder.idempotencyKey, `reminder-email-1-${newStart}-${moved.id}`);
  const hhmm = new Date(newStart).toISOString().slice(11, 16);
  assert.match(reminder.body.subject, new RegExp(`${hhmm} \\(UTC\\)$`));
  assert.match(reminder.body.text, /A reminder: Ava will call you at \+15558675310/);
  await worker.scheduled();
  await sleep(1_000);
  assert.equal(remindersTo('moved@example.com').length, 1, 'sent once');
  assert.deepEqual(remindersTo('cancelled@example.com'), []);
  const after = (await worker.api('GET', `/api/v1/calls/${moved.id}`)).body;
  const sent = after.reminders.find((r) => r.before_minutes === 1);
  assert.equal(sent.status, 'queued');
  const email = after.emails.find((e) => e.id === sent.email_id);
  assert.equal(email?.kind, 'reminder');
  assert.equal(email?.status, 'sent');
});

test('a call without a contact e-mail gets no e-mail reminders', async () => {
  const agent = await agentFor();
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: at(Date.now() + 3_600_000) });
  assert.equal(res.status, 201, res.text);
  assert.deepEqual((await worker.api('GET', `/api/v1/calls/${res.body.id}`)).body.reminders, []);
});
