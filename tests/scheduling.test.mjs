// Call scheduling end to end: the API, confirmation emails with invites (fake Resend), dispatch
// by alarm / cron (fake Twilio REST), Bland hand-over (fake Bland), status callbacks driving the
// state machine, no-answer retries, and call.* events forwarded to a target endpoint.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, eventually, signedCallbackQuery } from './harness.mjs';
import { startFakeTwilio } from './fakes/twilio.mjs';
import { startFakeResend, icsAttachment, icsProperties } from './fakes/resend.mjs';
import { startFakeBland, BLAND_START_TIME, parseBlandStartTime } from './fakes/bland.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import { startFakeHttp } from './fakes/http.mjs';
import { connectWs } from './fakes/ws.mjs';

const ACCOUNT_SID = 'AC' + '0'.repeat(32);
const AUTH_TOKEN = '12345';
let worker;
let twilio;
let resend;
let bland;
let target;
let telnyx;
let agent;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  resend = await startFakeResend({ apiKey: 're_test_key' });
  bland = await startFakeBland({ apiKey: 'bland-key', webhookSecret: 'bland-test-secret' });
  target = await startFakeTarget();
  // Telnyx Call Control `POST /v2/calls`: answers with the new call's ids (docs/protocols.md §9.2).
  telnyx = await startFakeHttp({
    routes: {
      'POST /v2/calls': (req) => ({
        status: req.headers.authorization === 'Bearer KEY_telnyx_test' ? 200 : 401,
        body: { data: { record_type: 'call', call_control_id: `v3:${req.at}`, call_leg_id: 'leg-1', call_session_id: 'sess-1', is_alive: false } },
      }),
    },
  });
  worker = await startWorker({
    vars: {
      TWILIO_API_URL: twilio.url,
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      RESEND_API_URL: resend.url,
      RESEND_API_KEY: 're_test_key',
      EMAIL_FROM: 'Acme Calls <calls@acme.example>',
      BLAND_API_URL: bland.url,
      BLAND_API_KEY: 'bland-key',
      DEFAULT_FROM_NUMBER: '+15017122661',
      TELNYX_API_URL: telnyx.url,
      TELNYX_API_KEY: 'KEY_telnyx_test',
    },
  });
  const endpoint = await worker.api('POST', '/api/v1/endpoints', { url: target.url, event_types: ['call.*'] });
  assert.equal(endpoint.status, 201);
  target.setSecret(endpoint.body.secret);
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Ava', system_prompt: 'You confirm appointments.', first_message: 'Hi, this is Ava.',
    voice: { provider: 'elevenlabs', voice_id: 'voice_1' },
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
});

after(async () => {
  await worker?.stop();
  await Promise.all([twilio?.close(), resend?.close(), bland?.close(), target?.close(), telnyx?.close()]);
});

const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();
const emailsTo = (address) => resend.emails.filter((e) => [].concat(e.body.to).includes(address));
const invite = (email) => {
  const props = icsProperties(icsAttachment(email));
  const get = (name) => props.find((p) => p.name === name)?.value;
  return { props, get };
};
const eventsFor = (callId) => target.deliveries.filter((d) => d.json?.data?.call_id === callId).map((d) => d.json.type);
const createsFor = (callId) => twilio.createRequests.filter((r) => (r.fields?.StatusCallback ?? '').includes(`call_id=${callId}`));

test('agents and numbers: created, listed, validated', async () => {
  const bad = await worker.api('POST', '/api/v1/agents', { name: '', voice: { provider: 'skype' } });
  assert.equal(bad.status, 422);
  const fields = bad.body.error.details.map((d) => d.field);
  assert.deepEqual(fields, ['name', 'system_prompt', 'voice.provider']);
  const number = await worker.api('POST', '/api/v1/numbers', { number: '+15550001111', agent_id: agent.id });
  assert.equal(number.status, 201, number.text);
  assert.equal(number.body.agent_id, agent.id);
  assert.equal(number.body.ring_owner_first, false);
  const dup = await worker.api('POST', '/api/v1/numbers', { number: '+15550001111', agent_id: agent.id });
  assert.equal(dup.status, 409);
  const unknown = await worker.api('POST', '/api/v1/numbers', { number: '+15550002222', agent_id: 'ag_nope' });
  assert.equal(unknown.status, 422);
  assert.equal(unknown.body.error.details[0].code, 'unknown_agent');
  const list = await worker.api('GET', '/api/v1/agents');
  assert.equal(list.status, 200);
  assert.ok(list.body.data.some((a) => a.id === agent.id));
  assert.ok('next_cursor' in list.body);
});

test('scheduling validates every field and honours Idempotency-Key', async () => {
  const bad = await worker.api('POST', '/api/v1/calls', {
    to: '555-1234', agent_id: agent.id, local_time: '2020-01-01T10:00', time_zone: 'Mars/Olympus',
    contact: { email: 'not-an-email' },
  });
  assert.equal(bad.status, 422);
  const codes = Object.fromEntries(bad.body.error.details.map((d) => [d.field, d.code]));
  assert.equal(codes.to, 'invalid_phone');
  assert.equal(codes.time_zone, 'unknown_time_zone');
  assert.equal(codes['contact.email'], 'invalid_email');
  const past = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: agent.id, start_at: '2020-01-01T00:00:00Z' });
  assert.equal(past.status, 422);
  assert.equal(past.body.error.details[0].code, 'in_past');
  const noAgent = await worker.api('POST', '/api/v1/calls', { to: '+15558675310', agent_id: 'ag_missing', start_at: inSeconds(3600) });
  assert.equal(noAgent.status, 422);
  assert.equal(noAgent.body.error.details[0].code, 'unknown_agent');

  const body = { to: '+15558675310', agent_id: agent.id, start_at: inSeconds(7200) };
  const headers = { 'idempotency-key': `idem-${Date.now()}` };
  const first = await worker.api('POST', '/api/v1/calls', body, { headers });
  assert.equal(first.status, 201, first.text);
  assert.equal(first.body.status, 'scheduled');
  const again = await worker.api('POST', '/api/v1/calls', body, { headers });
  assert.equal(again.status, 201);
  assert.equal(again.body.id, first.body.id);
  const other = await worker.api('POST', '/api/v1/calls', { ...body, to: '+15558675311' }, { headers });
  assert.equal(other.status, 409);
  assert.equal(other.body.error.code, 'idempotency_conflict');
  // The agent's registered number is its caller id.
  assert.equal(first.body.from, '+15550001111');
  const del = await worker.api('DELETE', `/api/v1/calls/${first.body.id}`);
  assert.equal(del.status, 200);
});

test('twilio: email with invite, one dispatch by alarm despite cron, callbacks complete the call, events forwarded', async () => {
  const email = 'jordan@example.com';
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675310', agent_id: agent.id, start_at: inSeconds(3), from: '+15017122661',
    contact: { name: 'Jordan Lee', email }, metadata: { crm: 'lead-7' },
  });
  assert.equal(res.status, 201, res.text);
  const call = res.body;
  assert.equal(call.status, 'scheduled');
  assert.equal(call.provider, 'twilio');

  const sent = await eventually(() => emailsTo(email)[0], { message: 'confirmation email' });
  assert.match(sent.body.subject, /Call scheduled/);
  assert.ok(sent.body.html && sent.body.text);
  assert.equal(sent.idempotencyKey, `call-${call.id}-scheduled-0`);
  const ics = invite(sent);
  assert.equal(ics.get('METHOD'), 'REQUEST');
  assert.equal(ics.get('UID'), `${call.id}@phone-agent`);
  assert.equal(ics.get('SEQUENCE'), '0');
  assert.match(sent.body.attachments[0].content_type, /text\/calendar; method=REQUEST/);

  // The alarm dials at start_at; the cron firing too must not dial again.
  await eventually(() => createsFor(call.id).length === 1, { timeout: 20_000, message: 'twilio create call' });
  await worker.scheduled();
  await worker.scheduled();
  await new Promise((r) => setTimeout(r, 1000));
  const creates = createsFor(call.id);
  assert.equal(creates.length, 1);
  const form = creates[0].fields;
  assert.equal(form.To, '+15558675310');
  assert.equal(form.From, '+15017122661');
  // Callback URLs carry call_id and attempt signed with the server key (and an expiry).
  const exp = Number(new URL(form.Url).searchParams.get('exp'));
  assert.ok(exp > Date.now() / 1000);
  assert.equal(form.Url, `${worker.url}/voice/twilio/incoming?${signedCallbackQuery(call.id, { attempt: 1, expires: exp })}`);
  assert.equal(form.StatusCallback, `${worker.url}/voice/twilio/status?${signedCallbackQuery(call.id, { attempt: 1, expires: exp })}`);
  assert.deepEqual([].concat(form.StatusCallbackEvent), ['initiated', 'ringing', 'answered', 'completed']);
  assert.equal(creates[0].auth.user, ACCOUNT_SID);

  const sid = creates[0].callSid;
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${call.id}`)).body.status === 'queued', { message: 'queued' });
  for (const status of ['initiated', 'ringing', 'in-progress', 'completed']) {
    const cb = await twilio.sendStatus(sid, status);
    assert.equal(cb.status, 200, cb.text);
  }
  // A repeated, out-of-order callback never moves the call backwards.
  const late = await twilio.sendStatus(sid, 'ringing');
  assert.equal(late.status, 200);
  const done = await worker.api('GET', `/api/v1/calls/${call.id}`);
  assert.equal(done.body.status, 'completed');
  assert.equal(done.body.provider_call_id, sid);
  const transitions = done.body.history.filter((h) => h.kind === 'status').map((h) => h.to);
  assert.deepEqual(transitions, ['scheduled', 'dispatching', 'queued', 'ringing', 'in_progress', 'completed']);
  assert.equal(done.body.email_status, 'sent');

  const del = await worker.api('DELETE', `/api/v1/calls/${call.id}`);
  assert.equal(del.status, 409);
  const patch = await worker.api('PATCH', `/api/v1/calls/${call.id}`, { start_at: inSeconds(3600) });
  assert.equal(patch.status, 409);

  await eventually(() => {
    const types = eventsFor(call.id);
    return ['call.scheduled', 'call.dispatching', 'call.queued', 'call.ringing', 'call.in_progress', 'call.completed']
      .every((t) => types.includes(t));
  }, { timeout: 20_000, message: 'call events at the target' });
  assert.ok(target.deliveries.filter((d) => d.json?.data?.call_id === call.id).every((d) => d.verified !== false));

  const list = await worker.api('GET', '/api/v1/calls?status=completed');
  assert.ok(list.body.data.some((c) => c.id === call.id));
  const none = await worker.api('GET', `/api/v1/calls?status=completed&from=${encodeURIComponent(inSeconds(86400))}`);
  assert.equal(none.body.data.length, 0);
});

test('reschedule sends SEQUENCE+1 with the same UID; cancel sends METHOD:CANCEL and never dials', async () => {
  const email = 'casey@example.com';
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675312', agent_id: agent.id, start_at: inSeconds(3600), contact: { email },
  });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  await eventually(() => emailsTo(email).length === 1, { message: 'first email' });

  const moved = await worker.api('PATCH', `/api/v1/calls/${id}`, { local_time: '2099-05-01T09:30', time_zone: 'Europe/Paris' });
  assert.equal(moved.status, 200, moved.text);
  assert.equal(moved.body.start_at, '2099-05-01T07:30:00.000Z');
  assert.equal(moved.body.sequence, 1);
  const second = await eventually(() => emailsTo(email)[1], { message: 'reschedule email' });
  const first = invite(emailsTo(email)[0]);
  const update = invite(second);
  assert.equal(update.get('UID'), first.get('UID'));
  assert.equal(update.get('SEQUENCE'), '1');
  assert.equal(update.get('METHOD'), 'REQUEST');
  assert.match(second.body.subject, /rescheduled/);

  const canceled = await worker.api('DELETE', `/api/v1/calls/${id}`);
  assert.equal(canceled.status, 200);
  assert.equal(canceled.body.status, 'canceled');
  const third = await eventually(() => emailsTo(email)[2], { message: 'cancel email' });
  const cancel = invite(third);
  assert.equal(cancel.get('METHOD'), 'CANCEL');
  assert.equal(cancel.get('STATUS'), 'CANCELLED');
  assert.equal(cancel.get('UID'), first.get('UID'));
  assert.equal(cancel.get('SEQUENCE'), '2');
  assert.match(third.body.attachments[0].content_type, /method=CANCEL/);

  assert.equal((await worker.api('DELETE', `/api/v1/calls/${id}`)).status, 200);
  assert.equal((await worker.api('PATCH', `/api/v1/calls/${id}`, { start_at: inSeconds(7200) })).status, 409);
  await worker.scheduled();
  assert.equal(createsFor(id).length, 0);
  await eventually(() => eventsFor(id).includes('call.canceled') && eventsFor(id).includes('call.rescheduled'),
    { message: 'cancel and reschedule events' });
});

test('time zones come from the runtime: DST gaps refused, overlaps take the first occurrence, exact IANA names', async () => {
  // The Worker ships no zone tables: these figures are the tz database's, read through workerd's
  // Intl (the core's native tests hold chrono-tz to the same ones, see zones.rs).
  const schedule = (time_zone, local_time, extra = {}) =>
    worker.api('POST', '/api/v1/calls', { to: '+15558675320', agent_id: agent.id, local_time, time_zone, ...extra });
  const refused = async (time_zone, local_time, code) => {
    const res = await schedule(time_zone, local_time);
    assert.equal(res.status, 422, res.text);
    assert.deepEqual(res.body.error.details.map((d) => [d.field, d.code]), [[code === 'unknown_time_zone' ? 'time_zone' : 'local_time', code]]);
    return res.body.error.details[0];
  };
  const gap = await refused('America/New_York', '2099-03-08T02:30', 'nonexistent_time');
  assert.match(gap.message, /America\/New_York/);
  await refused('Australia/Lord_Howe', '2099-10-04T02:15', 'nonexistent_time');
  for (const name of ['america/new_york', 'Mars/Olympus', '+01:00', 'Factory']) {
    await refused(name, '2099-06-01T09:00', 'unknown_time_zone');
  }

  for (const [zone, local, utc] of [
    ['America/New_York', '2099-11-01T01:30', '2099-11-01T05:30:00.000Z'], // EDT, not EST
    ['Australia/Lord_Howe', '2099-04-05T01:45', '2099-04-04T14:45:00.000Z'], // +11:00, not +10:30
    ['US/Eastern', '2099-07-04T12:00', '2099-07-04T16:00:00.000Z'], // a link, kept as given
    ['Pacific/Chatham', '2099-01-15T12:00', '2099-01-14T22:15:00.000Z'], // +13:45
  ]) {
    const res = await schedule(zone, local);
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.start_at, utc, `${zone} ${local}`);
    assert.equal(res.body.time_zone, zone);
  }

  // The zone's local time in the confirmation email and in Bland's start_time.
  const email = 'zones@example.com';
  const res = await schedule('Asia/Kolkata', '2099-01-15T09:00', { provider: 'bland', contact: { email } });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.start_at, '2099-01-15T03:30:00.000Z');
  const sent = await eventually(() => emailsTo(email)[0], { message: 'confirmation email' });
  assert.equal(sent.body.subject, 'Call scheduled: Thu 15 Jan 2099, 09:00 (Asia/Kolkata)');
  const send = await eventually(
    () => bland.requests.find((r) => r.method === 'POST' && r.path === '/v1/calls' && r.parsed?.metadata?.call_id === res.body.id),
    { message: 'bland send-call' },
  );
  assert.equal(send.parsed.start_time, '2099-01-15 09:00:00 +05:30');
  assert.equal(send.parsed.timezone, 'Asia/Kolkata');
});

test('bland: start_time in Bland format, completion webhook completes the call', async () => {
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675313', agent_id: agent.id, provider: 'bland',
    local_time: '2099-03-10T15:00', time_zone: 'America/Chicago', metadata: { booking: 'bk_1' },
  });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  const sentReq = await eventually(
    () => bland.requests.find((r) => r.method === 'POST' && r.path === '/v1/calls' && r.parsed?.metadata?.call_id === id),
    { message: 'bland send-call' },
  );
  const body = sentReq.parsed;
  assert.match(body.start_time, BLAND_START_TIME);
  assert.equal(body.start_time, '2099-03-10 15:00:00 -05:00');
  assert.equal(parseBlandStartTime(body.start_time), Date.parse(res.body.start_at));
  assert.equal(body.phone_number, '+15558675313');
  assert.equal(body.task, 'You confirm appointments.');
  assert.equal(body.first_sentence, 'Hi, this is Ava.');
  const webhookExp = Number(new URL(body.webhook).searchParams.get('exp'));
  assert.equal(body.webhook, `${worker.url}/webhooks/bland?${signedCallbackQuery(id, { attempt: 1, expires: webhookExp })}`);
  assert.equal(body.metadata.booking, 'bk_1');
  assert.equal(sentReq.headers.authorization, 'bland-key');
  const blandId = sentReq.callId;
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${id}`)).body.provider_call_id === blandId,
    { message: 'bland id stored' });

  const hook = await bland.complete(blandId);
  assert.equal(hook.status, 200, hook.text);
  const done = await worker.api('GET', `/api/v1/calls/${id}`);
  assert.equal(done.body.status, 'completed');
  assert.deepEqual(done.body.history.filter((h) => h.kind === 'status').map((h) => h.to),
    ['scheduled', 'dispatching', 'queued', 'completed']);
  await eventually(() => eventsFor(id).includes('call.completed'), { message: 'bland completion event' });
});

test('bland: reschedule stops the old Bland call and sends a new one; cancel stops it', async () => {
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675314', agent_id: agent.id, provider: 'bland', start_at: inSeconds(3600),
  });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  const sends = () => bland.requests.filter((r) => r.method === 'POST' && r.path === '/v1/calls' && r.parsed?.metadata?.call_id === id);
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${id}`)).body.provider_call_id, { message: 'first bland id' });
  const firstId = sends()[0].callId;
  const moved = await worker.api('PATCH', `/api/v1/calls/${id}`, { start_at: inSeconds(7200) });
  assert.equal(moved.status, 200, moved.text);
  await eventually(() => sends().length === 2 && bland.calls.get(firstId)?.stopped, { message: 'resubmitted and stopped' });
  const secondId = sends()[1].callId;
  // Bland's format has whole seconds.
  assert.equal(parseBlandStartTime(sends()[1].parsed.start_time), Math.floor(Date.parse(moved.body.start_at) / 1000) * 1000);
  assert.equal((await worker.api('DELETE', `/api/v1/calls/${id}`)).status, 200);
  await eventually(() => bland.calls.get(secondId)?.stopped, { message: 'stopped on cancel' });
});

test('resend failing: the call stays scheduled and the email is retried until sent', async () => {
  const email = 'retry@example.com';
  resend.failNext(2, 500);
  const res = await worker.api('POST', '/api/v1/calls', {
    to: '+15558675315', agent_id: agent.id, start_at: inSeconds(3600), contact: { email },
  });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  const failing = await eventually(async () => {
    const c = (await worker.api('GET', `/api/v1/calls/${id}`)).body;
    return c.email?.attempts >= 1 && c.email.status === 'pending' && c.email_status === 'retrying' && c;
  }, { message: 'first failed attempt' });
  assert.equal(failing.status, 'scheduled');
  assert.equal(failing.email_status, 'retrying');
  assert.equal(failing.email.last_status_code, 500);
  assert.match(failing.email.last_error, /HTTP 500/);

  const sent = await eventually(async () => {
    const c = (await worker.api('GET', `/api/v1/calls/${id}`)).body;
    return c.email?.status === 'sent' && c;
  }, { timeout: 30_000, message: 'email sent after retries' });
  // At least one retry (another test's email may take one of the scripted failures).
  assert.ok(sent.email.attempts >= 2, `attempts ${sent.email.attempts}`);
  assert.equal(sent.email_status, 'sent');
  assert.equal(sent.status, 'scheduled');
  assert.equal(emailsTo(email).length, 1);
  assert.ok(sent.history.some((h) => h.kind === 'email' && h.detail.status === 'retrying'));
  await worker.api('DELETE', `/api/v1/calls/${id}`);
});

test('no-answer is retried per the agent policy; stale callbacks of the first attempt are ignored', async () => {
  const retrying = await worker.api('POST', '/api/v1/agents', {
    name: 'Retry', system_prompt: 'Try again.', retry: { max_retries: 1, spacing_seconds: 10 },
  });
  assert.equal(retrying.status, 201, retrying.text);
  const res = await worker.api('POST', '/api/v1/calls', { to: '+15558675316', agent_id: retrying.body.id, start_at: inSeconds(2) });
  assert.equal(res.status, 201, res.text);
  const id = res.body.id;
  await eventually(() => createsFor(id).length === 1, { timeout: 20_000, message: 'first dial' });
  const firstSid = createsFor(id)[0].callSid;
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${id}`)).body.status === 'queued', { message: 'queued' });
  assert.equal((await twilio.sendStatus(firstSid, 'no-answer')).status, 200);

  const retried = (await worker.api('GET', `/api/v1/calls/${id}`)).body;
  assert.equal(retried.status, 'scheduled');
  assert.equal(retried.attempt, 2);
  const wait = Date.parse(retried.start_at) - Date.now();
  assert.ok(wait > 5_000 && wait <= 10_500, `retry in ${wait} ms`);
  assert.ok(retried.history.some((h) => h.kind === 'retry' && h.detail.attempt === 2));

  // A late callback of attempt 1 does not touch attempt 2.
  await twilio.sendStatus(firstSid, 'completed', {}, { force: true });
  assert.equal((await worker.api('GET', `/api/v1/calls/${id}`)).body.status, 'scheduled');

  await eventually(() => createsFor(id).length === 2, { timeout: 25_000, message: 'second dial' });
  const second = createsFor(id)[1];
  assert.equal(new URL(second.fields.StatusCallback).searchParams.get('attempt'), '2');
  await eventually(async () => (await worker.api('GET', `/api/v1/calls/${id}`)).body.status === 'queued', { message: 'queued again' });
  assert.equal((await twilio.sendStatus(second.callSid, 'busy')).status, 200);
  const final = (await worker.api('GET', `/api/v1/calls/${id}`)).body;
  assert.equal(final.status, 'busy');
  assert.equal(final.attempt, 2);
  await worker.scheduled();
  assert.equal(createsFor(id).length, 2);
  const statuses = final.history.filter((h) => h.kind === 'status').map((h) => h.to);
  assert.deepEqual(statuses, ['scheduled', 'dispatching', 'queued', 'no_answer', 'dispatching', 'queued', 'busy']);
});

test('telnyx: one dial at the due time, with a stream URL carrying the call\'s token', async () => {
  const created = await worker.api('POST', '/api/v1/calls', { to: '+15558675399', agent_id: agent.id, start_at: inSeconds(2), provider: 'telnyx' });
  assert.equal(created.status, 201, created.text);
  const id = created.body.id;
  await telnyx.waitFor((reqs) => reqs.some((r) => r.body.includes(id)), 30_000);
  await worker.scheduled();
  await new Promise((r) => setTimeout(r, 500));
  const dials = telnyx.requests.filter((r) => r.body.includes(id));
  assert.equal(dials.length, 1, 'exactly one dial');
  const body = dials[0].json();
  assert.equal(body.to, '+15558675399');
  assert.equal(body.webhook_url, `${worker.url}/webhooks/telnyx`);
  const streamUrl = new URL(body.stream_url);
  assert.equal(streamUrl.pathname, `/media/telnyx/${id}`);
  const [row] = await worker.d1(`SELECT stream_token, status, provider_call_id FROM calls WHERE id = '${id}'`);
  assert.equal(streamUrl.searchParams.get('token'), row.stream_token);
  assert.equal(row.status, 'queued');
  assert.match(row.provider_call_id, /^v3:/);
  // The carrier's stream is accepted with that URL, and refused with any other token.
  const accepted = await connectWs(body.stream_url);
  accepted.socket.close(1000);
  const wrong = new URL(body.stream_url);
  wrong.searchParams.set('token', 'stk_guess');
  await assert.rejects(connectWs(wrong.toString()), /403/);
});
