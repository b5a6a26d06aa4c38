// Text messages end to end in workerd, with the carriers played by fakes speaking their real
// messaging APIs: the suppression list (tenant-scoped, roles, idempotent); inbound Twilio and
// Telnyx messages verified (forged → 401), kept and forwarded as sms.received once (replays are
// duplicates); STOP / START / HELP maintaining the list with the carrier-standard replies
// (Twilio in the TwiML answer, Telnyx through its messaging API); outbound messages through the
// outbox (refused for an opted-out number, retried after a carrier 500 and sent once, skipped
// when the recipient opts out before the send), their delivery reports as sms.sent /
// sms.delivered; another tenant sees none of it; oversized bodies refused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startWorker, freePort, eventually, TEST_VARS } from './harness.mjs';
import { startFakeTwilio, sendTwilioText, twilioSid } from './fakes/twilio.mjs';
import { startFakeTelnyx } from './fakes/telnyx.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import { telnyxKeyPair, telnyxEvent, sendTelnyxWebhook } from './fakes/media-clients.mjs';
import { createAgent, createNumber, subscribeTarget } from './live-setup.mjs';
import { skipBrowser, launchBrowser, newPage, shotBoth } from './browser.mjs';

const ACCOUNT_SID = 'AC' + 'a'.repeat(32);
const TELNYX_API_KEY = 'KEYsmstest';
// The private half of TEST_VARS.TELNYX_PUBLIC_KEY (RFC 8032 test 1).
const TELNYX = telnyxKeyPair('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
const TWILIO_NUMBER = '+15550101000';
const TELNYX_NUMBER = '+15550102000';
const THEIR_NUMBER = '+15550103000';
const STOP_REPLY = 'You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe.';
const START_REPLY = 'You have successfully been re-subscribed to messages from this number. Reply HELP for help. Reply STOP to unsubscribe. Msg&amp;Data Rates May Apply.';
const HELP_REPLY = 'Reply STOP to unsubscribe. Msg&Data Rates May Apply.';

let worker, twilio, telnyx, target, other, viewer, operator;

before(async () => {
  const port = await freePort();
  const via = `http://127.0.0.1:${port}`;
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN, via });
  telnyx = await startFakeTelnyx({ apiKey: TELNYX_API_KEY, privateKey: TELNYX.privateKey, via });
  worker = await startWorker({
    port,
    vars: {
      TWILIO_ACCOUNT_SID: ACCOUNT_SID, TWILIO_API_URL: twilio.url,
      TELNYX_API_KEY, TELNYX_API_URL: telnyx.url,
    },
  });
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  other = tenant.body.api_key.key;
  viewer = (await worker.api('POST', '/api/v1/api-keys', { name: 'ro', role: 'viewer' })).body.key;
  operator = (await worker.api('POST', '/api/v1/api-keys', { name: 'ops', role: 'operator' })).body.key;
  const agent = await createAgent(worker, { name: 'Front desk', system_prompt: 'You answer the phone.' });
  await createNumber(worker, TWILIO_NUMBER, agent.id);
  await createNumber(worker, TELNYX_NUMBER, agent.id);
  const theirAgent = await worker.api('POST', '/api/v1/agents', { name: 'Theirs', system_prompt: 'x' }, { key: other });
  assert.equal(theirAgent.status, 201, theirAgent.text);
  await createNumber(worker, THEIR_NUMBER, theirAgent.body.id, { tenant_id: tenant.body.id });
  target = await startFakeTarget();
  await subscribeTarget(worker, target, ['sms.*']);
});
after(async () => {
  await worker?.stop();
  await twilio?.close();
  await telnyx?.close();
  await target?.close();
});

/** A Twilio incoming-message webhook from `from` to `to`, signed with `token`. */
function twilioText(from, to, body, { sid, token = TEST_VARS.TWILIO_AUTH_TOKEN } = {}) {
  return sendTwilioText(`${worker.url}/sms/twilio`, token, { from, to, body, sid, accountSid: ACCOUNT_SID });
}

/** A Telnyx `message.received` from `from` to `to`, signed with `key`. */
function telnyxText(from, to, text, { id, key = TELNYX.privateKey } = {}) {
  const event = telnyxEvent('message.received', {
    id: crypto.randomUUID(), direction: 'inbound', type: 'SMS', text, parts: 1, encoding: 'GSM-7', errors: [], media: [],
    from: { phone_number: from, carrier: 'T-Mobile USA', line_type: 'long_code' },
    to: [{ phone_number: to, status: 'webhook_delivered', carrier: 'Telnyx', line_type: 'Wireless' }],
    received_at: new Date().toISOString(), record_type: 'message',
  }, id ? { id } : {});
  return sendTelnyxWebhook(`${worker.url}/sms/telnyx`, key, event);
}

const delivered = (type) => target.deliveries.filter((d) => d.json?.type === type);
const suppressed = async (key) => (await worker.api('GET', '/api/v1/suppressions', undefined, key ? { key } : {})).body.data.map((s) => s.phone);

test('suppressions: operators add and lift, idempotent, paged, tenant-scoped; viewers only read', async () => {
  const phone = '+14155550123';
  const added = await worker.api('POST', '/api/v1/suppressions', { phone }, { key: operator });
  assert.equal(added.status, 201, added.text);
  assert.equal(added.body.phone, phone);
  assert.equal(added.body.source, 'operator');
  assert.match(added.body.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const again = await worker.api('POST', '/api/v1/suppressions', { phone }, { key: operator });
  assert.equal(again.status, 200, again.text);
  assert.deepEqual(again.body, added.body);

  for (const body of [{ phone: '4155550123' }, {}, { phone: 5 }]) {
    const bad = await worker.api('POST', '/api/v1/suppressions', body, { key: operator });
    assert.equal(bad.status, 422, bad.text);
    assert.equal(bad.body.error.details[0].field, 'phone');
  }

  const denied = await worker.api('POST', '/api/v1/suppressions', { phone: '+14155550124' }, { key: viewer });
  assert.equal(denied.status, 403, denied.text);
  assert.equal((await worker.api('DELETE', `/api/v1/suppressions/${phone}`, undefined, { key: viewer })).status, 403);
  const seen = await worker.api('GET', '/api/v1/suppressions', undefined, { key: viewer });
  assert.equal(seen.status, 200, seen.text);
  assert.deepEqual(seen.body.data.map((s) => s.phone), [phone]);

  // Another tenant sees none of it and cannot lift it; its own entry for the same number is its own.
  const theirs = await worker.api('GET', '/api/v1/suppressions', undefined, { key: other });
  assert.deepEqual(theirs.body.data, []);
  const lift = await worker.api('DELETE', `/api/v1/suppressions/${encodeURIComponent(phone)}`, undefined, { key: other });
  assert.equal(lift.status, 404, lift.text);
  assert.equal((await worker.api('POST', '/api/v1/suppressions', { phone }, { key: other })).status, 201);
  assert.equal((await worker.api('GET', '/api/v1/suppressions')).body.data.length, 1);

  // Pages, newest first.
  for (const n of ['+14155550125', '+14155550126']) {
    assert.equal((await worker.api('POST', '/api/v1/suppressions', { phone: n })).status, 201);
  }
  const first = await worker.api('GET', '/api/v1/suppressions?limit=2');
  assert.deepEqual(first.body.data.map((s) => s.phone), ['+14155550126', '+14155550125']);
  const rest = await worker.api('GET', `/api/v1/suppressions?limit=2&cursor=${first.body.next_cursor}`);
  assert.deepEqual(rest.body.data.map((s) => s.phone), [phone]);
  assert.equal(rest.body.next_cursor, null);

  // Lifted with the + as is or encoded; once gone, a 404.
  const gone = await worker.api('DELETE', `/api/v1/suppressions/${encodeURIComponent(phone)}`, undefined, { key: operator });
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual(gone.body, { id: phone, deleted: true });
  assert.equal((await worker.api('DELETE', `/api/v1/suppressions/${phone}`)).status, 404);
  assert.equal((await worker.api('DELETE', '/api/v1/suppressions/+14155550125')).status, 200);
  assert.equal((await worker.api('GET', '/api/v1/suppressions', undefined, { key: other })).body.data.length, 1);
  const audit = await worker.api('GET', '/api/v1/audit-log');
  assert.ok(audit.body.data.some((e) => e.action === 'suppression.delete'), 'lifting is audited');
});

test('inbound Twilio and Telnyx messages: verified, kept, forwarded as sms.received once; forged ones refused', async () => {
  const texter = '+14155550200';
  const sid = twilioSid('SM');
  const first = await twilioText(texter, TWILIO_NUMBER, 'Hello, is this the bistro?', { sid });
  assert.equal(first.status, 200, first.text);
  assert.match(first.headers.get('content-type'), /^text\/xml/);
  assert.match(first.text, /<Response><\/Response>$/, 'an ordinary message gets no reply');
  const replay = await twilioText(texter, TWILIO_NUMBER, 'Hello, is this the bistro?', { sid });
  assert.equal(replay.status, 200, replay.text);
  const forged = await twilioText(texter, TWILIO_NUMBER, 'STOP', { token: 'not-the-token' });
  assert.equal(forged.status, 401, forged.text);
  assert.equal(JSON.parse(forged.text).error.code, 'invalid_signature');

  const eventId = crypto.randomUUID();
  const t1 = await telnyxText(texter, TELNYX_NUMBER, 'Any table tonight?', { id: eventId });
  assert.equal(t1.status, 200, t1.text);
  assert.deepEqual({ ...JSON.parse(t1.text), id: undefined }, { received: true, id: undefined, type: 'sms.received', duplicate: false });
  const t2 = await telnyxText(texter, TELNYX_NUMBER, 'Any table tonight?', { id: eventId });
  assert.equal(JSON.parse(t2.text).duplicate, true);
  const tForged = await telnyxText(texter, TELNYX_NUMBER, 'STOP', { key: telnyxKeyPair().privateKey });
  assert.equal(tForged.status, 401, tForged.text);

  await target.waitFor((d) => d.filter((x) => x.json?.type === 'sms.received').length >= 2);
  await new Promise((r) => setTimeout(r, 500));
  const received = delivered('sms.received');
  assert.equal(received.length, 2, 'each message forwarded once');
  const byProvider = Object.fromEntries(received.map((d) => [d.json.data.provider, d.json.data]));
  assert.equal(byProvider.twilio.text, 'Hello, is this the bistro?');
  assert.equal(byProvider.twilio.from, texter);
  assert.equal(byProvider.twilio.to, TWILIO_NUMBER);
  assert.equal(byProvider.twilio.provider_message_id, sid);
  assert.equal(byProvider.telnyx.text, 'Any table tonight?');
  assert.equal(byProvider.telnyx.to, TELNYX_NUMBER);
  assert.equal(byProvider.telnyx.provider_event_id, eventId);
  assert.ok(!(await suppressed()).includes(texter), 'forged STOPs suppressed nothing');

  const inbound = await worker.api('GET', '/api/v1/messages?direction=inbound');
  assert.equal(inbound.status, 200, inbound.text);
  assert.deepEqual(inbound.body.data.map((m) => [m.provider, m.body, m.status]).sort(), [
    ['telnyx', 'Any table tonight?', 'received'], ['twilio', 'Hello, is this the bistro?', 'received'],
  ]);
  // Another tenant's events and messages are its own.
  assert.deepEqual((await worker.api('GET', '/api/v1/messages', undefined, { key: other })).body.data, []);
  assert.deepEqual((await worker.api('GET', '/api/v1/events?type=sms.received', undefined, { key: other })).body.data, []);
  // A carrier we do not text through has no messaging webhook.
  assert.equal((await worker.fetch('/sms/exotel', { method: 'POST' })).status, 404);
});

test('STOP suppresses with the carrier reply and blocks sending; START lifts it; HELP answers; replays repeat nothing', async () => {
  const texter = '+14155550300';
  const sid = twilioSid('SM');
  const stop = await twilioText(texter, TWILIO_NUMBER, '  Stop ', { sid });
  assert.equal(stop.status, 200, stop.text);
  assert.ok(stop.text.includes(`<Response><Message>${STOP_REPLY}</Message></Response>`), stop.text);
  const [entry] = (await worker.api('GET', '/api/v1/suppressions')).body.data.filter((s) => s.phone === texter);
  assert.equal(entry.source, 'keyword');
  const again = await twilioText(texter, TWILIO_NUMBER, '  Stop ', { sid });
  assert.match(again.text, /<Response><\/Response>$/, 'a replayed STOP is not answered twice');

  const refused = await worker.api('POST', '/api/v1/messages', { to: texter, body: 'Still there?' }, { key: operator });
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.body.error.code, 'recipient_opted_out');
  // The list is the tenant's: another tenant may still text that number.
  assert.ok(!(await suppressed(other)).includes(texter));

  // Telnyx: HELP and STOP answered through the messaging API (the STOP reply goes out although
  // the number is now suppressed: the opt-out is confirmed once).
  const texter2 = '+14155550301';
  assert.equal((await telnyxText(texter2, TELNYX_NUMBER, 'help')).status, 200);
  assert.equal((await telnyxText(texter2, TELNYX_NUMBER, 'STOP')).status, 200);
  await eventually(async () => {
    await worker.scheduled();
    return telnyx.messageRequests.filter((r) => JSON.parse(r.body).to === texter2).length === 2;
  }, { timeout: 20_000, message: 'Telnyx replies sent' });
  const replies = telnyx.messageRequests.map((r) => JSON.parse(r.body)).filter((b) => b.to === texter2);
  assert.deepEqual(replies.map((b) => b.text).sort(), [HELP_REPLY, STOP_REPLY].sort());
  assert.ok(replies.every((b) => b.from === TELNYX_NUMBER));
  assert.ok((await suppressed()).includes(texter2));

  const start = await twilioText(texter, TWILIO_NUMBER, 'START');
  assert.ok(start.text.includes(`<Message>${START_REPLY}</Message>`), start.text);
  assert.ok(!(await suppressed()).includes(texter));
  const allowed = await worker.api('POST', '/api/v1/messages', { to: texter, body: 'Welcome back' }, { key: operator });
  assert.equal(allowed.status, 202, allowed.text);
  // "please stop" is a message, not a keyword.
  await twilioText(texter, TWILIO_NUMBER, 'please stop calling at night');
  assert.ok(!(await suppressed()).includes(texter));
});

test('outbound: queued, retried after a carrier 500, sent once; delivery reports forwarded as sms.sent / sms.delivered', async () => {
  const to = '+14155550400';
  twilio.failNext(1, 500, 20500, (r) => /Messages\.json$/.test(r.path));
  const before = twilio.messageRequests.length;
  const res = await worker.api('POST', '/api/v1/messages', { to, body: 'Your table for two is at 7pm.' }, { key: operator });
  assert.equal(res.status, 202, res.text);
  assert.equal(res.body.status, 'pending');
  assert.equal(res.body.provider, 'twilio');
  assert.equal(res.body.from, TWILIO_NUMBER, 'the tenant\'s first number by default');
  const id = res.body.id;
  const sent = await eventually(async () => {
    await worker.scheduled();
    const m = (await worker.api('GET', `/api/v1/messages/${id}`)).body;
    return m.status === 'sent' && m;
  }, { timeout: 20_000, message: 'message sent after the retry' });
  assert.equal(sent.attempts, 2);
  const requests = twilio.messageRequests.slice(before);
  assert.equal(requests.length, 2, 'one failed attempt, one sent');
  const ours = [...twilio.messages.values()].filter((m) => m.to === to);
  assert.equal(ours.length, 1, 'the carrier has the message once');
  assert.equal(ours[0].from, TWILIO_NUMBER);
  assert.equal(ours[0].body, 'Your table for two is at 7pm.');
  assert.equal(ours[0].statusCallback, `${worker.url}/sms/twilio`);
  assert.equal(sent.provider_message_id, ours[0].sid);

  assert.equal((await twilio.sendMessageStatus(ours[0].sid, 'sent')).status, 200);
  assert.equal((await twilio.sendMessageStatus(ours[0].sid, 'delivered')).status, 200);
  assert.equal((await twilio.sendMessageStatus(ours[0].sid, 'delivered')).status, 200, 'a replayed report');
  await target.waitFor((d) => d.some((x) => x.json?.type === 'sms.delivered' && x.json.data.message_id === id));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(delivered('sms.delivered').filter((d) => d.json.data.message_id === id).length, 1);
  assert.equal(delivered('sms.sent').filter((d) => d.json.data.message_id === id).length, 1);
  assert.equal((await worker.api('GET', `/api/v1/messages/${id}`)).body.status, 'delivered');

  // Telnyx, from a named number.
  const viaTelnyx = await worker.api('POST', '/api/v1/messages', { to, from: TELNYX_NUMBER, body: 'See you soon', provider: 'telnyx' });
  assert.equal(viaTelnyx.status, 202, viaTelnyx.text);
  const tm = await eventually(async () => {
    const m = (await worker.api('GET', `/api/v1/messages/${viaTelnyx.body.id}`)).body;
    return m.status === 'sent' && m;
  }, { timeout: 20_000, message: 'Telnyx message sent' });
  const carrierCopy = telnyx.messages.get(tm.provider_message_id);
  assert.deepEqual([carrierCopy.from, carrierCopy.to, carrierCopy.text], [TELNYX_NUMBER, to, 'See you soon']);
  assert.equal(carrierCopy.webhookUrl, `${worker.url}/sms/telnyx`);
  assert.equal(telnyx.messageRequests.at(-1).headers.authorization, `Bearer ${TELNYX_API_KEY}`);
  assert.equal((await telnyx.sendMessageEvent(tm.provider_message_id, 'message.finalized', 'delivered')).status, 200);
  await target.waitFor((d) => d.some((x) => x.json?.type === 'sms.delivered' && x.json.data.message_id === viaTelnyx.body.id));
  assert.equal((await worker.api('GET', `/api/v1/messages/${viaTelnyx.body.id}`)).body.status, 'delivered');
});

test('a recipient who opts out after the message was queued gets nothing: skipped at send', async () => {
  const to = '+14155550500';
  twilio.failNext(1, 503, 20500, (r) => /Messages\.json$/.test(r.path));
  const res = await worker.api('POST', '/api/v1/messages', { to, body: 'Reminder: tomorrow 9am' });
  assert.equal(res.status, 202, res.text);
  await eventually(async () => (await worker.api('GET', `/api/v1/messages/${res.body.id}`)).body.attempts === 1, { message: 'first attempt failed' });
  assert.equal((await twilioText(to, TWILIO_NUMBER, 'STOP')).status, 200);
  const m = await eventually(async () => {
    await worker.scheduled();
    const m = (await worker.api('GET', `/api/v1/messages/${res.body.id}`)).body;
    return m.status === 'skipped' && m;
  }, { timeout: 20_000, message: 'skipped at send' });
  assert.match(m.last_error, /opted out/);
  assert.equal([...twilio.messages.values()].filter((x) => x.to === to).length, 0);
});

test('messages: limits, roles and tenants', async () => {
  const to = '+14155550600';
  const long = await worker.api('POST', '/api/v1/messages', { to, body: 'x'.repeat(1601) });
  assert.equal(long.status, 422, long.text);
  assert.equal(long.body.error.details[0].code, 'too_long');
  const huge = await worker.api('POST', '/api/v1/messages', { to, body: 'x'.repeat(70_000) });
  assert.equal(huge.status, 413, huge.text);
  const viewerSend = await worker.api('POST', '/api/v1/messages', { to, body: 'hi' }, { key: viewer });
  assert.equal(viewerSend.status, 403, viewerSend.text);
  // Another tenant's number is not a sender, their calls are unknown, our messages invisible.
  const theirs = await worker.api('POST', '/api/v1/messages', { to, body: 'hi', from: THEIR_NUMBER });
  assert.equal(theirs.status, 422, theirs.text);
  assert.equal(theirs.body.error.details[0].code, 'unknown_number');
  const ours = await worker.api('POST', '/api/v1/messages', { to, body: 'hi', from: TWILIO_NUMBER });
  assert.equal(ours.status, 202, ours.text);
  assert.equal((await worker.api('GET', `/api/v1/messages/${ours.body.id}`, undefined, { key: other })).status, 404);
  assert.deepEqual((await worker.api('GET', '/api/v1/messages', undefined, { key: other })).body.data, []);
  const badCall = await worker.api('POST', '/api/v1/messages', { to, body: 'hi', call_id: 'call_nope' });
  assert.equal(badCall.body.error.details[0].code, 'unknown_call');
  // Their texter's STOP lands on their list, not ours.
  await twilioText('+14155550601', THEIR_NUMBER, 'STOP');
  assert.ok((await suppressed(other)).includes('+14155550601'));
  assert.ok(!(await suppressed()).includes('+14155550601'));
});

test('an agent with sms.confirmations texts each booked call a confirmation, through the outbox; not to an opted-out number', async () => {
  const agent = await createAgent(worker, { name: 'Bookings', system_prompt: 'You confirm bookings.', sms: { confirmations: true } });
  assert.deepEqual(agent.sms, { confirmations: true });
  const badSms = await worker.api('POST', '/api/v1/agents', { name: 'x', system_prompt: 'y', sms: { confirmations: 'yes' } });
  assert.equal(badSms.status, 422, badSms.text);
  assert.equal(badSms.body.error.details[0].field, 'sms.confirmations');
  const to = '+14155550700';
  const call = await worker.api('POST', '/api/v1/calls', {
    to, agent_id: agent.id, from: TWILIO_NUMBER, local_time: '2030-03-04T09:30', time_zone: 'Europe/Paris',
  });
  assert.equal(call.status, 201, call.text);
  const [confirmation] = await eventually(async () => {
    const list = (await worker.api('GET', `/api/v1/messages?call_id=${call.body.id}`)).body.data;
    return list.length && list[0].status === 'sent' && list;
  }, { timeout: 20_000, message: 'confirmation sent' });
  assert.equal(confirmation.kind, 'confirmation');
  assert.equal(confirmation.body, 'Your call with Bookings is scheduled for Mon Mar 4 at 09:30 (Europe/Paris). Reply STOP to opt out.');
  const sent = twilio.messages.get(confirmation.provider_message_id);
  assert.deepEqual([sent.from, sent.to, sent.body], [TWILIO_NUMBER, to, confirmation.body]);

  // Opted out: the call is booked, no text is queued.
  assert.equal((await worker.api('POST', '/api/v1/suppressions', { phone: '+14155550701' })).status, 201);
  const quiet = await worker.api('POST', '/api/v1/calls', { to: '+14155550701', agent_id: agent.id, from: TWILIO_NUMBER, start_at: new Date(Date.now() + 86_400_000).toISOString() });
  assert.equal(quiet.status, 201, quiet.text);
  assert.deepEqual((await worker.api('GET', `/api/v1/messages?call_id=${quiet.body.id}`)).body.data, []);
});

test('the dashboard Messages page: send, list, suppress and lift; viewers get no controls; desktop and phone', { skip: skipBrowser }, async () => {
  const browser = await launchBrowser();
  try {
    const page = await newPage(browser, worker);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Messages' }).click();
    await page.getByRole('heading', { name: 'Messages', level: 2 }).waitFor();
    const send = page.getByRole('form', { name: 'Send a message' });
    await send.getByLabel('To', { exact: true }).fill('+14155550800');
    await send.getByLabel('Text', { exact: true }).fill('Dashboard says hi: https://example.com/' + 'a'.repeat(120));
    await send.getByRole('button', { name: 'Send' }).click();
    await page.locator('#messages-list').getByText('+14155550800').first().waitFor();

    const suppress = page.getByRole('form', { name: 'Suppress a number' });
    await suppress.getByLabel('Phone', { exact: true }).fill('+14155550801');
    await suppress.getByRole('button', { name: 'Suppress' }).click();
    await page.locator('#suppressions-list').getByText('+14155550801').waitFor();
    assert.ok((await suppressed()).includes('+14155550801'));
    // Sending to it is refused, and the form says why.
    await send.getByLabel('To', { exact: true }).fill('+14155550801');
    await send.getByLabel('Text', { exact: true }).fill('hello?');
    await send.getByRole('button', { name: 'Send' }).click();
    await send.getByText(/suppression list/).waitFor();

    const { overflow } = await shotBoth(page, 'messages');
    assert.ok(overflow <= 1, `messages page overflows by ${overflow}px`);

    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Remove +14155550801' }).click();
    await page.locator('#suppressions-list').getByText('+14155550801').waitFor({ state: 'detached' });
    assert.ok(!(await suppressed()).includes('+14155550801'));
    assert.deepEqual(page.errors, []);

    const readOnly = await newPage(browser, worker, { key: viewer });
    await readOnly.goto(`${worker.url}/#/messages`);
    await readOnly.getByRole('heading', { name: 'Messages', level: 2 }).waitFor();
    assert.equal(await readOnly.getByRole('form', { name: 'Send a message' }).getByRole('button', { name: 'Send' }).isDisabled(), true);
    assert.equal(await readOnly.getByRole('form', { name: 'Suppress a number' }).getByRole('button', { name: 'Suppress' }).isDisabled(), true);
  } finally {
    await browser.close();
  }
});
