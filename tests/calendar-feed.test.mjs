// An agent calendar's iCalendar feed (`calendar.feed_url`, the secret address Google Calendar
// publishes) blocks booking: a fake calendar host on 127.0.0.1 serves a weekly Europe/Berlin
// meeting across the next DST change (with an EXDATE, a transparent and a cancelled event); a
// live call's find_slots leaves those hours out on both sides of the change and booking one is
// refused, by the call's tool and by the API. The feed is cached (one fetch). A feed answering
// 500, too slowly, too much or garbage stops booking (503 calendar_unavailable), never books
// blind. A feed URL on a private address is refused when the agent is saved.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, startWorker } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { googleCalendar, startFakeIcalFeed } from './fakes/ical-feed.mjs';

const NUMBER = '+15550004101';
const DAY = 86_400_000;
const FEED = '/calendar/ical/practice%40group.calendar.google.com/private-7f3a9c/basic.ics';

let setup, worker, dg, openai, feed, agent;

/** Berlin wall-clock {date: 'YYYY-MM-DD', time: 'HH:MM'} of an instant. */
function berlin(ms) {
  const f = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}` };
}

/** `date` (YYYY-MM-DD) at `hhmm` Berlin time, as RFC 3339 with the offset then in force. */
function berlinAt(date, hhmm) {
  for (const offset of ['+01:00', '+02:00']) {
    const at = `${date}T${hhmm}:00${offset}`;
    const seen = berlin(Date.parse(at));
    if (seen.date === date && seen.time === hhmm) return at;
  }
  throw new Error(`no ${hhmm} on ${date} in Berlin`);
}

const addDays = (date, n) => new Date(Date.parse(`${date}T12:00:00Z`) + n * DAY).toISOString().slice(0, 10);
const compact = (date) => date.replaceAll('-', '');
const offsetAtNoon = (date) => Date.parse(`${date}T12:00:00Z`) - Date.parse(berlinAt(date, '12:00'));

/** The Sunday of Berlin's next DST change at least three weeks away. */
function nextDstChange() {
  let date = addDays(new Date().toISOString().slice(0, 10), 21);
  for (let i = 0; i < 400; i++, date = addDays(date, 1)) {
    if (offsetAtNoon(date) !== offsetAtNoon(addDays(date, -1))) return date;
  }
  throw new Error('no DST change within a year');
}

const change = nextDstChange();
const mondays = { first: addDays(change, -20), skipped: addDays(change, -13), before: addDays(change, -6), after: addDays(change, 1) };

function practiceFeed({ withMeeting = true } = {}) {
  const stamp = 'DTSTAMP:20260101T000000Z';
  return googleCalendar({
    events: [
      ...(withMeeting ? [[
        `DTSTART;TZID=Europe/Berlin:${compact(mondays.first)}T100000`,
        `DTEND;TZID=Europe/Berlin:${compact(mondays.first)}T110000`,
        'RRULE:FREQ=WEEKLY;BYDAY=MO',
        `EXDATE;TZID=Europe/Berlin:${compact(mondays.skipped)}T100000`,
        stamp,
        'UID:weekly-review-3kq9@google.com',
        'DESCRIPTION:The weekly review of open cases\\, with a description long enough to be folded by the writer.',
        'SEQUENCE:0',
        'STATUS:CONFIRMED',
        'SUMMARY:Weekly review',
        'TRANSP:OPAQUE',
      ]] : []),
      // Shown in the calendar but free: blocks nothing.
      [`DTSTART;TZID=Europe/Berlin:${compact(mondays.before)}T090000`, `DTEND;TZID=Europe/Berlin:${compact(mondays.before)}T100000`, stamp, 'UID:focus@google.com', 'SUMMARY:Focus', 'TRANSP:TRANSPARENT'],
      // Cancelled: blocks nothing.
      [`DTSTART;TZID=Europe/Berlin:${compact(mondays.after)}T110000`, `DTEND;TZID=Europe/Berlin:${compact(mondays.after)}T120000`, stamp, 'UID:dropped@google.com', 'STATUS:CANCELLED', 'SUMMARY:Dropped'],
    ],
  });
}

const calendar = (feedUrl) => ({ time_zone: 'Europe/Berlin', weekly: { mon: [['09:00', '12:00']] }, slot_minutes: 60, horizon_days: 365, feed_url: feedUrl });
const base = { system_prompt: 'You book appointments. Be brief.', first_message: 'Hi.', voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION };

before(async () => {
  feed = await startFakeIcalFeed({ [FEED]: { body: practiceFeed() } });
  setup = await startLiveWorker();
  ({ worker, dg, openai } = setup);
  agent = await createAgent(worker, { name: 'with feed', ...base, calendar: calendar(feed.url(FEED)) });
  await createNumber(worker, NUMBER, agent.id);
});

after(async () => {
  await setup?.stop();
  await feed?.close();
});

const lastMessage = (req) => req.parsed?.messages?.at(-1);

/** The caller says `transcript`, the model answers with `toolCalls`; resolves to the results sent back. */
async function modelCalls(call, transcript, toolCalls) {
  const from = openai.chatRequests.length;
  openai.reply({ match: (req) => lastMessage(req)?.role === 'user' && lastMessage(req).content === transcript, text: 'One moment.', toolCalls });
  dg.say(call.stt, { transcript, is_final: true, speech_final: true });
  const ids = new Set(toolCalls.map((c) => c.id));
  const followUp = await eventually(
    () => openai.chatRequests.slice(from).find((r) => r.parsed?.stream && r.parsed.messages.some((m) => m.role === 'tool' && ids.has(m.tool_call_id))),
    { timeout: 20_000, message: `tool results for "${transcript}"` },
  );
  const results = {};
  for (const m of followUp.parsed.messages) {
    if (m.role === 'tool' && ids.has(m.tool_call_id)) results[m.tool_call_id] = JSON.parse(m.content);
  }
  return results;
}

const slotsOf = (result) => result.slots.map((s) => berlin(Date.parse(s.start_at)));
const feedFetches = () => feed.requests.filter((r) => r.path === FEED).length;
const book = (agentId, startAt) => worker.api('POST', '/api/v1/appointments', { agent_id: agentId, start_at: startAt, caller_number: '+14155550301' });

test(`find_slots leaves out the feed's busy hours on both sides of the DST change (${change}); booking one is refused`, async () => {
  const call = await startTwilioCall(setup, { to: NUMBER, from: '+14155550300', greeting: 't0-s0' });
  const range = { from: `${mondays.first}T00:00:00Z`, to: `${addDays(mondays.after, 1)}T00:00:00Z` };
  const found = await modelCalls(call, 'When are you free?', [{ id: 'fs1', name: 'find_slots', arguments: range }]);
  assert.ok(found.fs1.slots, JSON.stringify(found.fs1));
  const offered = slotsOf(found.fs1);
  assert.deepEqual(offered, [
    { date: mondays.first, time: '09:00' }, { date: mondays.first, time: '11:00' },
    // The EXDATE frees this Monday's 10:00.
    { date: mondays.skipped, time: '09:00' }, { date: mondays.skipped, time: '10:00' }, { date: mondays.skipped, time: '11:00' },
    // 10:00 Berlin is busy before and after the change, though its UTC hour moved; the free
    // (transparent) event keeps 09:00, the cancelled one keeps 11:00.
    { date: mondays.before, time: '09:00' }, { date: mondays.before, time: '11:00' },
    { date: mondays.after, time: '09:00' }, { date: mondays.after, time: '11:00' },
  ]);

  // The call's tool refuses the busy hour; the API too; a free hour books.
  const refused = await modelCalls(call, 'Ten o clock please.', [{ id: 'bk1', name: 'book_appointment', arguments: { start_at: berlinAt(mondays.after, '10:00') } }]);
  assert.equal(refused.bk1.code, 'calendar_busy', JSON.stringify(refused.bk1));
  const api = await book(agent.id, berlinAt(mondays.before, '10:00'));
  assert.equal(api.status, 409, api.text);
  assert.equal(api.body.error.code, 'calendar_busy');
  const free = await book(agent.id, berlinAt(mondays.after, '11:00'));
  assert.equal(free.status, 201, free.text);
  // Moving it onto a busy hour is refused the same way.
  const moved = await worker.api('POST', `/api/v1/appointments/${free.body.id}/reschedule`, { start_at: berlinAt(mondays.before, '10:00') });
  assert.equal(moved.status, 409, moved.text);
  assert.equal(moved.body.error.code, 'calendar_busy');
  const stored = await worker.d1(`SELECT slot_start FROM appointments WHERE agent_id = '${agent.id}' AND status = 'booked'`);
  assert.deepEqual(stored.map((r) => r.slot_start), [Date.parse(berlinAt(mondays.after, '11:00'))]);

  // One fetch served all of it (KV cache); a change of the feed shows only after the cache time.
  assert.equal(feedFetches(), 1);
  feed.feeds[FEED].body = practiceFeed({ withMeeting: false });
  const again = await modelCalls(call, 'Anything else?', [{ id: 'fs2', name: 'find_slots', arguments: range }]);
  assert.ok(!slotsOf(again.fs2).some((s) => s.time === '10:00' && s.date === mondays.after));
  assert.equal(feedFetches(), 1);
  await hangUp(call).catch(() => {});
});

test('a feed that cannot be read stops booking with 503 calendar_unavailable, never books blind', async () => {
  const cases = [
    { path: '/calendar/ical/down/private-1/basic.ics', feed: { status: 500, body: 'Internal Server Error' }, message: /HTTP 500/ },
    { path: '/calendar/ical/slow/private-2/basic.ics', feed: { delayMs: 8_000, body: practiceFeed() }, message: /timed out/ },
    { path: '/calendar/ical/huge/private-3/basic.ics', feed: { body: 'BEGIN:VCALENDAR\r\n' + `X-FILLER:${'x'.repeat(100)}\r\n`.repeat(22_000) + 'END:VCALENDAR\r\n' }, message: /larger than/ },
    { path: '/calendar/ical/broken/private-4/basic.ics', feed: { body: 'BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART 20300101\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' }, message: /line 3/ },
    { path: '/calendar/ical/gone/private-5/basic.ics', feed: undefined, message: /HTTP 404/ },
  ];
  for (const { path, feed: served, message } of cases) {
    if (served) feed.feeds[path] = served;
    const broken = await createAgent(worker, { name: `feed ${path}`, ...base, calendar: calendar(feed.url(path)) });
    const started = Date.now();
    const res = await book(broken.id, berlinAt(mondays.after, '09:00'));
    assert.equal(res.status, 503, `${path}: ${res.text}`);
    assert.equal(res.body.error.code, 'calendar_unavailable');
    assert.match(res.body.error.message, message);
    assert.ok(Date.now() - started < 7_500, `${path} answered within the feed timeout`);
    const rows = await worker.d1(`SELECT id FROM appointments WHERE agent_id = '${broken.id}'`);
    assert.deepEqual(rows, [], `${path}: nothing booked`);
  }
  // Nothing broken was cached: once the host answers, booking works.
  feed.feeds['/calendar/ical/down/private-1/basic.ics'] = { body: practiceFeed({ withMeeting: false }) };
  const recovered = (await worker.api('GET', '/api/v1/agents')).body.data.find((a) => a.name === 'feed /calendar/ical/down/private-1/basic.ics');
  const res = await book(recovered.id, berlinAt(mondays.after, '09:00'));
  assert.equal(res.status, 201, res.text);
});

test('feed URLs are checked when the agent is saved: form always, private addresses in production', async () => {
  const bad = await worker.api('POST', '/api/v1/agents', { name: 'bad feed', ...base, calendar: calendar('https://user:pass@calendar.example/a.ics') });
  assert.equal(bad.status, 422, bad.text);
  assert.equal(bad.body.error.details[0].field, 'calendar.feed_url');
  assert.equal(bad.body.error.details[0].code, 'invalid_url');
  const strict = await startWorker({ vars: { ALLOW_PRIVATE_TARGETS: 'false' } });
  try {
    for (const url of [feed.url(FEED), 'https://127.0.0.1/basic.ics', 'https://169.254.169.254/latest/meta-data', 'https://10.1.2.3/a.ics', 'https://calendar.internal/a.ics']) {
      const res = await strict.api('POST', '/api/v1/agents', { name: 'private feed', ...base, calendar: calendar(url) });
      assert.equal(res.status, 422, `${url}: ${res.text}`);
      assert.equal(res.body.error.details[0].field, 'calendar.feed_url');
      assert.match(res.body.error.details[0].code, /target_not_allowed/);
    }
    const ok = await strict.api('POST', '/api/v1/agents', { name: 'public feed', ...base, calendar: calendar('https://calendar.google.com/calendar/ical/x/private-y/basic.ics') });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.body.calendar.feed_url, 'https://calendar.google.com/calendar/ical/x/private-y/basic.ics');
    const patched = await strict.api('PATCH', `/api/v1/agents/${ok.body.id}`, { calendar: calendar('https://192.168.1.10/a.ics') });
    assert.equal(patched.status, 422, patched.text);
    assert.equal(patched.body.error.details[0].code, 'target_not_allowed');
  } finally {
    await strict.stop();
  }
});

test('a feed address is a credential: admin keys read it back, operator and viewer keys only its origin', async () => {
  const secretUrl = `${feed.url(FEED)}?token=private-5ecret`;
  const created = await createAgent(worker, { name: 'secret feed', ...base, calendar: calendar(secretUrl) });
  const origin = new URL(secretUrl).origin;
  for (const role of ['admin', 'operator', 'viewer']) {
    const key = (await worker.api('POST', '/api/v1/api-keys', { name: `feed ${role}`, role })).body.key;
    const one = await worker.api('GET', `/api/v1/agents/${created.id}`, undefined, { key });
    assert.equal(one.status, 200, one.text);
    const listed = await worker.api('GET', '/api/v1/agents?limit=100', undefined, { key });
    assert.equal(listed.status, 200, listed.text);
    const inList = listed.body.data.find((a) => a.id === created.id);
    const expected = role === 'admin' ? secretUrl : origin;
    assert.equal(one.body.calendar.feed_url, expected, role);
    assert.equal(inList.calendar.feed_url, expected, `${role} (list)`);
    if (role !== 'admin') assert.ok(!one.text.includes('5ecret') && !listed.text.includes('5ecret'), `${role} never sees the token`);
  }
});
