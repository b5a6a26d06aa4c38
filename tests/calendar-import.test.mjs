// Calendar import: `POST /api/v1/calls?agent_id=…` with a `text/calendar` body (Google and Outlook
// export shapes) schedules one call per VEVENT at the instant its TZID / VTIMEZONE gives;
// importing the same UIDs again moves those calls instead of adding calls; a malformed file is a
// 422 naming its line. The attacks: another tenant importing the same UIDs, a huge file, a file
// with too many events, a viewer key. Real workerd, real local D1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, sqlText, UNDIALLED_TWILIO } from './harness.mjs';

let worker, agent;

before(async () => {
  worker = await startWorker({ vars: { ...UNDIALLED_TWILIO, DEFAULT_FROM_NUMBER: '+15017122661' } });
  const created = await worker.api('POST', '/api/v1/agents', {
    name: 'Importer', system_prompt: 'You call people back about their appointment.',
    voice: { provider: 'elevenlabs', voice_id: 'voice_1' },
  });
  assert.equal(created.status, 201, created.text);
  agent = created.body;
});

after(async () => {
  await worker?.stop();
});

const crlf = (lines) => lines.join('\r\n') + '\r\n';

/** Three events in three zones: an IANA TZID (Google), a Windows name with its VTIMEZONE (Outlook), a UTC time. */
function threeZones({ berlinStart = '20300715T090000' } = {}) {
  return crlf([
    'BEGIN:VCALENDAR',
    'PRODID:-//Google Inc//Google Calendar 70.9054//EN',
    'VERSION:2.0',
    'BEGIN:VTIMEZONE',
    'TZID:Eastern Standard Time',
    'BEGIN:STANDARD',
    'DTSTART:16010101T020000',
    'TZOFFSETFROM:-0400',
    'TZOFFSETTO:-0500',
    'RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11',
    'END:STANDARD',
    'BEGIN:DAYLIGHT',
    'DTSTART:16010101T020000',
    'TZOFFSETFROM:-0500',
    'TZOFFSETTO:-0400',
    'RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3',
    'END:DAYLIGHT',
    'END:VTIMEZONE',
    'BEGIN:VEVENT',
    'UID:import-berlin@example.com',
    `DTSTART;TZID=Europe/Berlin:${berlinStart}`,
    'DTEND;TZID=Europe/Berlin:20300715T093000',
    'SUMMARY:Follow-up call',
    'ATTENDEE;CN="Lee, Jordan";ROLE=REQ-PARTICIPANT:tel:+49-30-1234567',
    'END:VEVENT',
    'BEGIN:VEVENT',
    'UID:040000008200E00074C5B7101A82E008000000001',
    'SUMMARY:Quarterly check-in',
    'DTSTART;TZID=Eastern Standard Time:20300715T090000',
    'DTEND;TZID=Eastern Standard Time:20300715T100000',
    'X-PHONE:+1 (415) 555-0100',
    'END:VEVENT',
    'BEGIN:VEVENT',
    'UID:import-utc@example.com',
    'DTSTART:20300716T063000Z',
    'LOCATION:tel:+81-3-1234-5678',
    'END:VEVENT',
    'END:VCALENDAR',
  ]);
}

async function importIcs(body, { agentId = agent.id, key, query = '' } = {}) {
  const res = await worker.fetch(`/api/v1/calls?agent_id=${encodeURIComponent(agentId)}${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key ?? 'test-admin-key'}`, 'content-type': 'text/calendar; charset=utf-8' },
    body,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, body: json, text };
}

const callsOf = (tenantId) => worker.d1(`SELECT id, to_number, start_at, time_zone, contact_name, ical_uid, status FROM calls WHERE tenant_id = ${sqlText(tenantId)} AND ical_uid IS NOT NULL ORDER BY ical_uid`);

let tenantId;

test('three events in three zones become three scheduled calls at the right instants', async () => {
  const res = await importIcs(threeZones());
  assert.equal(res.status, 200, res.text);
  assert.deepEqual([res.body.created, res.body.updated, res.body.unchanged, res.body.refused], [3, 0, 0, 0], res.text);
  assert.deepEqual(res.body.events.map((e) => e.result), ['created', 'created', 'created']);
  assert.deepEqual(res.body.events.map((e) => e.line), [19, 26, 33]);
  const byUid = Object.fromEntries(res.body.events.map((e) => [e.uid, e]));
  // 09:00 CEST, 09:00 EDT (from the file's own VTIMEZONE), and a UTC time.
  assert.equal(byUid['import-berlin@example.com'].start_at, '2030-07-15T07:00:00.000Z');
  assert.equal(byUid['040000008200E00074C5B7101A82E008000000001'].start_at, '2030-07-15T13:00:00.000Z');
  assert.equal(byUid['import-utc@example.com'].start_at, '2030-07-16T06:30:00.000Z');

  const call = await worker.api('GET', `/api/v1/calls/${byUid['import-berlin@example.com'].call_id}`);
  assert.equal(call.status, 200);
  tenantId = (await worker.d1(`SELECT tenant_id FROM calls WHERE id = ${sqlText(call.body.id)}`))[0].tenant_id;
  assert.equal(call.body.status, 'scheduled');
  assert.equal(call.body.to, '+49301234567');
  assert.equal(call.body.time_zone, 'Europe/Berlin');
  assert.equal(call.body.contact.name, 'Lee, Jordan');
  assert.equal(call.body.ical_uid, 'import-berlin@example.com');
  assert.equal(call.body.metadata.ical_summary, 'Follow-up call');
  const rows = await callsOf(tenantId);
  assert.equal(rows.length, 3);
  assert.deepEqual(rows.map((r) => r.to_number).sort(), ['+14155550100', '+49301234567', '+81312345678']);
  // The Outlook zone is not an IANA name: the instant is kept, no zone is claimed.
  assert.equal(rows.find((r) => r.ical_uid.startsWith('0400')).time_zone, null);
});

test('re-importing the same UIDs moves the changed call and duplicates nothing', async () => {
  const res = await importIcs(threeZones({ berlinStart: '20300715T110000' }));
  assert.equal(res.status, 200, res.text);
  assert.deepEqual([res.body.created, res.body.updated, res.body.unchanged, res.body.refused], [0, 1, 2, 0], res.text);
  const moved = res.body.events.find((e) => e.uid === 'import-berlin@example.com');
  assert.equal(moved.result, 'updated');
  assert.equal(moved.start_at, '2030-07-15T09:00:00.000Z');
  const rows = await callsOf(tenantId);
  assert.equal(rows.length, 3, 'no duplicate calls');
  assert.equal(rows.find((r) => r.ical_uid === 'import-berlin@example.com').start_at, Date.parse('2030-07-15T09:00:00Z'));
  const call = await worker.api('GET', `/api/v1/calls/${moved.call_id}`);
  assert.equal(call.body.sequence, 1, 'moved like a reschedule');
  assert.ok(call.body.history.some((h) => h.kind === 'reschedule'), JSON.stringify(call.body.history));
});

test('events that cannot be a call are refused one by one; the rest are imported', async () => {
  const res = await importIcs(crlf([
    'BEGIN:VCALENDAR',
    'BEGIN:VEVENT', 'UID:no-phone', 'DTSTART:20300801T090000Z', 'LOCATION:Room 4', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:weekly', 'DTSTART:20300801T090000Z', 'RRULE:FREQ=WEEKLY', 'X-PHONE:+14155550100', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:past', 'DTSTART:20200801T090000Z', 'X-PHONE:+14155550100', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:premium', 'DTSTART:20300801T090000Z', 'X-PHONE:+19005550100', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:floating', 'DTSTART:20300801T090000', 'X-PHONE:+14155550100', 'END:VEVENT',
    'BEGIN:VEVENT', 'UID:fine', 'DTSTART:20300801T090000Z', 'X-PHONE:+14155550100', 'END:VEVENT',
    'END:VCALENDAR',
  ]));
  assert.equal(res.status, 200, res.text);
  const result = Object.fromEntries(res.body.events.map((e) => [e.uid, e.result === 'refused' ? e.error.code : e.result]));
  assert.equal(result['no-phone'], 'no_phone');
  assert.equal(result.weekly, 'recurring_event');
  assert.equal(result.past, 'in_past');
  assert.equal(result.premium, 'premium_number');
  assert.equal(result.floating, 'floating_time');
  assert.equal(result.fine, 'created');
  // With ?time_zone= a floating time is read in that zone.
  const zoned = await importIcs(crlf(['BEGIN:VCALENDAR', 'BEGIN:VEVENT', 'UID:floating', 'DTSTART:20300801T090000', 'X-PHONE:+14155550100', 'END:VEVENT', 'END:VCALENDAR']), { query: '&time_zone=Asia/Kolkata' });
  assert.equal(zoned.body.events[0].result, 'created', zoned.text);
  assert.equal(zoned.body.events[0].start_at, '2030-08-01T03:30:00.000Z');
});

test('a malformed file is a 422 naming its line, and nothing is imported', async () => {
  const before = (await callsOf(tenantId)).length;
  const res = await importIcs(crlf([
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'BEGIN:VEVENT',
    'UID:broken',
    'SUMMARY:a long summary folded',
    '  onto a second line',
    'DTSTART;TZID=Europe/Berlin 20300801T090000',
    'X-PHONE:+14155550100',
    'END:VEVENT',
    'END:VCALENDAR',
  ]));
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.error.code, 'invalid_calendar');
  assert.equal(res.body.error.details.line, 7, res.text);
  assert.match(res.body.error.message, /^line 7: /);
  const unbalanced = await importIcs(crlf(['BEGIN:VCALENDAR', 'BEGIN:VEVENT', 'UID:x', 'END:VTODO', 'END:VCALENDAR']));
  assert.equal(unbalanced.status, 422);
  assert.equal(unbalanced.body.error.details.line, 4);
  assert.equal((await callsOf(tenantId)).length, before);
  // No agent named: a field error, before the file is read.
  const noAgent = await importIcs(threeZones(), { agentId: '' });
  assert.equal(noAgent.status, 422);
  assert.equal(noAgent.body.error.details[0].field, 'agent_id');
});

test("another tenant's import of the same UIDs creates its own calls and never touches these", async () => {
  const tenant = await worker.api('POST', '/api/v1/tenants', { name: 'Other importer' });
  assert.equal(tenant.status, 201, tenant.text);
  const otherKey = tenant.body.api_key.key;
  const mine = await callsOf(tenantId);
  // Our agent's id is unknown to the other tenant.
  const foreignAgent = await importIcs(threeZones({ berlinStart: '20300715T150000' }), { key: otherKey });
  assert.equal(foreignAgent.status, 422, foreignAgent.text);
  assert.equal(foreignAgent.body.error.details[0].code, 'unknown_agent');
  const otherAgent = await worker.api('POST', '/api/v1/agents', { name: 'Theirs', system_prompt: 'x', voice: { provider: 'elevenlabs', voice_id: 'v' } }, { key: otherKey });
  assert.equal(otherAgent.status, 201);
  const res = await importIcs(threeZones({ berlinStart: '20300715T150000' }), { key: otherKey, agentId: otherAgent.body.id });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.created, 3, res.text);
  assert.deepEqual(await callsOf(tenantId), mine, "the first tenant's calls are unchanged");
  for (const e of res.body.events) {
    assert.ok(!mine.some((m) => m.id === e.call_id));
    const seen = await worker.api('GET', `/api/v1/calls/${e.call_id}`);
    assert.equal(seen.status, 404, "the other tenant's call is not ours to see");
  }
});

test('a huge file is refused unread (413), too many events too, and a viewer cannot import', async () => {
  const huge = 'BEGIN:VCALENDAR\r\n' + `X-FILLER:${'x'.repeat(70)}\r\n`.repeat(4000) + 'END:VCALENDAR\r\n';
  assert.ok(huge.length > 256 * 1024);
  const res = await importIcs(huge);
  assert.equal(res.status, 413, res.text);
  assert.equal(res.body.error.code, 'payload_too_large');
  const events = Array.from({ length: 101 }, (_, i) => ['BEGIN:VEVENT', `UID:many-${i}`, 'DTSTART:20300801T090000Z', 'X-PHONE:+14155550100', 'END:VEVENT']).flat();
  const many = await importIcs(crlf(['BEGIN:VCALENDAR', ...events, 'END:VCALENDAR']));
  assert.equal(many.status, 413, many.text);
  assert.equal(many.body.error.code, 'too_many_events');
  const rows = await worker.d1(`SELECT count(*) AS n FROM calls WHERE ical_uid LIKE 'many-%'`);
  assert.equal(rows[0].n, 0);
  const key = await worker.api('POST', '/api/v1/api-keys', { name: 'viewer', role: 'viewer' });
  assert.equal(key.status, 201, key.text);
  const viewer = await importIcs(threeZones(), { key: key.body.key });
  assert.equal(viewer.status, 403, viewer.text);
});
