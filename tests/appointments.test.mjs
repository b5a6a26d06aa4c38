// Appointment booking during a live call: the model (fake OpenAI) calls find_slots, then
// book_appointment; the slot is stored in D1, `appointment.booked` is published, and
// /api/v1/appointments shows it to its tenant only. The attacks: two calls racing for one slot,
// one call booking many slots, times outside the hours / off the grid / past the horizon, an
// agent without a calendar. Real live calls end to end (Twilio webhook → media stream → fake
// Deepgram → fake OpenAI emitting the tool calls), real workerd, real local D1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sqlText } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, hangUp, QUIET_SESSION } from './live-setup.mjs';

const BOOKING_NUMBER = '+15550004001';
const PLAIN_NUMBER = '+15550004002';
const EVERY_DAY = Object.fromEntries(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => [d, [['09:00', '17:00']]]));
const CALENDAR = { time_zone: 'Europe/Berlin', weekly: EVERY_DAY, slot_minutes: 30, buffer_minutes: 15, horizon_days: 14 };

let setup, worker, dg, openai;
const agents = {};
let otherKey;

before(async () => {
  setup = await startLiveWorker();
  ({ worker, dg, openai } = setup);
  const base = { system_prompt: 'You book appointments. Be brief.', first_message: 'Hi.', voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION };
  agents.booking = await createAgent(worker, { name: 'booking', ...base, calendar: CALENDAR });
  agents.plain = await createAgent(worker, { name: 'plain', ...base });
  await createNumber(worker, BOOKING_NUMBER, agents.booking.id);
  await createNumber(worker, PLAIN_NUMBER, agents.plain.id);
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other' });
  assert.equal(tenant.status, 201, tenant.text);
  otherKey = tenant.body.api_key.key;
});

after(async () => {
  await setup?.stop();
});

const startCall = (to, from) => startTwilioCall(setup, { to, from, greeting: 't0-s0' });
const endCall = (call) => hangUp(call).catch(() => {});
const lastMessage = (req) => req.parsed?.messages?.at(-1);

/** The caller says `transcript`, the model answers with `toolCalls`; resolves to the tools offered and the results sent back. */
async function modelCalls(call, transcript, toolCalls) {
  const from = openai.chatRequests.length;
  openai.reply({ match: (req) => lastMessage(req)?.role === 'user' && lastMessage(req).content === transcript, text: 'One moment.', toolCalls });
  dg.say(call.stt, { transcript, is_final: true, speech_final: true });
  const ids = new Set(toolCalls.map((c) => c.id));
  const followUp = await eventually(
    () => openai.chatRequests.slice(from).find((r) => r.parsed?.stream && r.parsed.messages.some((m) => m.role === 'tool' && ids.has(m.tool_call_id))),
    { timeout: 20_000, message: `tool results for "${transcript}" sent to the model` },
  );
  const asked = openai.chatRequests.slice(from).find((r) => lastMessage(r)?.content === transcript);
  const results = {};
  for (const m of followUp.parsed.messages) {
    if (m.role === 'tool' && ids.has(m.tool_call_id)) results[m.tool_call_id] = JSON.parse(m.content);
  }
  return { offered: asked.parsed.tools.map((t) => t.function.name), results };
}

const findSlots = (id, args = {}) => ({ id, name: 'find_slots', arguments: args });
const book = (id, startAt, extra = {}) => ({ id, name: 'book_appointment', arguments: { start_at: startAt, ...extra } });

const rowsOf = (callId) => worker.d1(`SELECT id, agent_id, call_id, slot_start, slot_end, status, caller_number, name FROM appointments WHERE call_id = ${sqlText(callId)}`);

/** Berlin wall-clock parts of an RFC 3339 time with offset. */
function berlin(rfc3339) {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(rfc3339));
  return parts;
}

/** A Berlin local time `days` from today at `hhmm`, as RFC 3339 with the offset then in force. */
function berlinAt(days, hhmm) {
  const day = new Date(Date.now() + days * 86_400_000);
  const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(day);
  for (const offset of ['+01:00', '+02:00']) {
    const at = `${date}T${hhmm}:00${offset}`;
    if (berlin(at) === hhmm) return at;
  }
  throw new Error(`no ${hhmm} on ${date}`);
}

test('a call finds free slots and books one: stored, appointment.booked published, listed for its tenant only', async () => {
  const call = await startCall(BOOKING_NUMBER, '+14155550201');
  const found = await modelCalls(call, 'I would like an appointment.', [findSlots('fs1')]);
  assert.ok(found.offered.includes('find_slots') && found.offered.includes('book_appointment'), `offered: ${found.offered}`);
  const { slots, time_zone: zone } = found.results.fs1;
  assert.equal(zone, 'Europe/Berlin');
  assert.ok(slots.length > 0 && slots.length <= 12, JSON.stringify(found.results.fs1));
  for (const s of slots) {
    const start = berlin(s.start_at);
    assert.ok(start >= '09:00' && start <= '16:30', `slot ${s.start_at} inside 09:00-17:00 Berlin`);
    assert.equal(new Date(s.end_at) - new Date(s.start_at), 30 * 60_000);
    assert.ok(new Date(s.start_at) > Date.now());
    // The grid: 09:00, 09:45, 10:30, … (30 minutes plus a 15-minute buffer).
    const [h, m] = start.split(':').map(Number);
    assert.equal(((h - 9) * 60 + m) % 45, 0, `${start} is on the 45-minute grid`);
  }
  const chosen = slots[0].start_at;
  const { results } = await modelCalls(call, 'The first one, please. My name is Ada.', [book('bk1', chosen, { name: 'Ada', note: 'first visit' })]);
  assert.equal(results.bk1.booked, true, JSON.stringify(results.bk1));
  assert.equal(new Date(results.bk1.start_at).getTime(), new Date(chosen).getTime());
  const rows = await rowsOf(call.callId);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].id, results.bk1.appointment_id);
  assert.equal(rows[0].agent_id, agents.booking.id);
  assert.equal(rows[0].status, 'booked');
  assert.equal(rows[0].caller_number, '+14155550201', 'the caller comes from the call, not from the model');
  assert.equal(rows[0].slot_start, new Date(chosen).getTime());

  // Booked slots are no longer offered.
  const again = await modelCalls(call, 'What else is free?', [findSlots('fs2')]);
  assert.ok(!again.results.fs2.slots.some((s) => new Date(s.start_at).getTime() === new Date(chosen).getTime()));

  const event = await eventually(async () => {
    const res = await worker.api('GET', '/api/v1/events?type=appointment.booked');
    return res.body.data.find((e) => e.call_id === call.callId);
  }, { timeout: 10_000, message: 'appointment.booked event' });
  const detail = await worker.api('GET', `/api/v1/events/${event.id}`);
  assert.equal(detail.status, 200, detail.text);
  assert.equal(detail.body.payload.type, 'appointment.booked', detail.text);
  const announced = detail.body.payload.data.appointment;
  assert.equal(announced.id, results.bk1.appointment_id, detail.text);
  assert.equal(announced.status, 'booked');
  assert.equal(announced.name, 'Ada');

  const list = await worker.api('GET', `/api/v1/appointments?call_id=${call.callId}`);
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.data.length, 1);
  const listed = list.body.data[0];
  assert.equal(listed.id, results.bk1.appointment_id);
  assert.equal(listed.name, 'Ada');
  assert.equal(listed.note, 'first visit');
  assert.equal(listed.time_zone, 'Europe/Berlin');
  assert.equal(new Date(listed.start_at).getTime(), new Date(chosen).getTime());
  const one = await worker.api('GET', `/api/v1/appointments/${listed.id}`);
  assert.equal(one.status, 200, one.text);
  assert.deepEqual(one.body, listed);

  // Another tenant sees nothing of it.
  assert.equal((await worker.api('GET', `/api/v1/appointments/${listed.id}`, undefined, { key: otherKey })).status, 404);
  const theirs = await worker.api('GET', '/api/v1/appointments', undefined, { key: otherKey });
  assert.equal(theirs.status, 200);
  assert.deepEqual(theirs.body.data, []);
  await endCall(call);
});

test('two calls racing for the same slot: exactly one books it, the other is told it is taken', async () => {
  const slot = berlinAt(3, '11:15');
  // Started one after the other (the fake Deepgram hands out connections in order); the
  // bookings themselves race.
  const a = await startCall(BOOKING_NUMBER, '+14155550202');
  const b = await startCall(BOOKING_NUMBER, '+14155550203');
  const [ra, rb] = await Promise.all([
    modelCalls(a, 'Book eleven fifteen for me.', [book('race_a', slot)]),
    modelCalls(b, 'I want eleven fifteen too.', [book('race_b', slot)]),
  ]);
  const outcomes = [ra.results.race_a, rb.results.race_b];
  assert.equal(outcomes.filter((r) => r.booked === true).length, 1, JSON.stringify(outcomes));
  const loser = outcomes.find((r) => r.booked !== true);
  assert.equal(loser.code, 'slot_taken', JSON.stringify(loser));
  const rows = await worker.d1(`SELECT call_id FROM appointments WHERE slot_start = ${new Date(slot).getTime()} AND status = 'booked'`);
  assert.equal(rows.length, 1);
  await Promise.all([endCall(a), endCall(b)]);
});

test('one call cannot book many slots: five bookings in one reply store one', async () => {
  const call = await startCall(BOOKING_NUMBER, '+14155550204');
  const five = [0, 1, 2, 3, 4].map((i) => book(`many_${i}`, berlinAt(4 + i, '13:30')));
  const { results } = await modelCalls(call, 'Book every afternoon next week.', five);
  const ok = Object.values(results).filter((r) => r.booked === true);
  assert.equal(ok.length, 1, JSON.stringify(results));
  assert.ok(Object.values(results).filter((r) => !r.booked).every((r) => r.code === 'already_booked'), JSON.stringify(results));
  assert.equal((await rowsOf(call.callId)).length, 1);
  await endCall(call);
});

test('times outside the hours, off the grid, past the horizon or in the past are refused', async () => {
  const call = await startCall(BOOKING_NUMBER, '+14155550205');
  const { results } = await modelCalls(call, 'Can I come at night?', [
    book('night', berlinAt(2, '03:00')),
    book('offgrid', berlinAt(2, '09:10')),
    book('evening', berlinAt(2, '17:00')),
    book('far', berlinAt(20, '09:00')),
    book('past', berlinAt(-1, '09:00')),
    book('garbage', 'tomorrow at nine'),
    book('long', berlinAt(2, '09:00'), { note: 'x'.repeat(1001) }),
  ]);
  assert.equal(results.night.code, 'not_a_slot', JSON.stringify(results.night));
  assert.equal(results.offgrid.code, 'not_a_slot');
  assert.equal(results.evening.code, 'not_a_slot');
  assert.equal(results.far.code, 'beyond_horizon');
  assert.equal(results.past.code, 'slot_in_past');
  assert.match(results.garbage.error, /RFC 3339/);
  assert.match(results.long.error, /note is longer than 1000/);
  assert.deepEqual(await rowsOf(call.callId), []);
  await endCall(call);
});

test('an agent without a calendar: the tools are not offered; called anyway, they are refused', async () => {
  const call = await startCall(PLAIN_NUMBER, '+14155550206');
  const { offered, results } = await modelCalls(call, 'Book me in tomorrow.', [findSlots('nf'), book('nb', berlinAt(1, '09:00'))]);
  assert.ok(!offered.includes('find_slots') && !offered.includes('book_appointment'), `offered: ${offered}`);
  assert.equal(results.nf.code, 'no_calendar');
  assert.equal(results.nb.code, 'no_calendar');
  assert.deepEqual(await rowsOf(call.callId), []);
  await endCall(call);
});

test('calendar settings are validated', async () => {
  const res = await worker.api('POST', '/api/v1/agents', {
    name: 'bad', system_prompt: 'x',
    calendar: { time_zone: 'Mars/Base', weekly: { mon: [['17:00', '09:00']] }, slot_minutes: 1 },
  });
  assert.equal(res.status, 422, res.text);
  const fields = res.body.error.details.map((d) => d.field);
  for (const f of ['calendar.time_zone', 'calendar.weekly.mon', 'calendar.slot_minutes']) assert.ok(fields.includes(f), `${f} in ${fields}`);
  assert.deepEqual(agents.booking.calendar, { ...CALENDAR, weekly: EVERY_DAY });
  assert.equal(agents.plain.calendar, null);
});

test('the API books with the same rules: concurrent creates of one slot give one 201 and 409s; cancel frees the slot', async () => {
  const slot = berlinAt(6, '15:45');
  const body = { agent_id: agents.booking.id, start_at: slot, name: 'Grace', caller_number: '+14155550207' };
  const results = await Promise.all([0, 1, 2, 3, 4].map(() => worker.api('POST', '/api/v1/appointments', body)));
  const created = results.filter((r) => r.status === 201);
  assert.equal(created.length, 1, results.map((r) => `${r.status} ${r.text}`).join('\n'));
  for (const r of results.filter((x) => x.status !== 201)) {
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error.code, 'slot_taken');
  }
  const booked = created[0].body;
  assert.equal(booked.status, 'booked');
  assert.equal(booked.call_id, null);
  assert.equal(booked.sequence, 0);

  for (const [start, code] of [[berlinAt(6, '15:50'), 'not_a_slot'], [berlinAt(6, '20:00'), 'not_a_slot'], [berlinAt(30, '09:00'), 'beyond_horizon']]) {
    const r = await worker.api('POST', '/api/v1/appointments', { ...body, start_at: start });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.error.code, code);
  }
  const noCalendar = await worker.api('POST', '/api/v1/appointments', { ...body, agent_id: agents.plain.id });
  assert.equal(noCalendar.body.error.code, 'no_calendar', noCalendar.text);
  // Another tenant cannot book on this tenant's agent, nor cancel its appointment.
  assert.equal((await worker.api('POST', '/api/v1/appointments', body, { key: otherKey })).status, 404);
  assert.equal((await worker.api('POST', `/api/v1/appointments/${booked.id}/cancel`, undefined, { key: otherKey })).status, 404);

  const canceled = await worker.api('POST', `/api/v1/appointments/${booked.id}/cancel`);
  assert.equal(canceled.status, 200, canceled.text);
  assert.equal(canceled.body.status, 'canceled');
  assert.equal(canceled.body.sequence, 1);
  const twice = await worker.api('POST', `/api/v1/appointments/${booked.id}/cancel`);
  assert.equal(twice.status, 409, twice.text);
  assert.equal(twice.body.error.code, 'already_canceled');
  const events = await eventually(async () => {
    const res = await worker.api('GET', '/api/v1/events?type=appointment.canceled');
    return res.body.data.find((e) => e.payload.data.appointment.id === booked.id);
  }, { timeout: 10_000, message: 'appointment.canceled event' });
  assert.equal(events.payload.data.appointment.status, 'canceled');

  // The slot is free again.
  const rebooked = await worker.api('POST', '/api/v1/appointments', body);
  assert.equal(rebooked.status, 201, rebooked.text);
  assert.notEqual(rebooked.body.id, booked.id);
});
