// A fake calendar host serving a secret iCalendar address the way Google Calendar does: a plain
// `GET` of `/calendar/ical/<id>/private-<secret>/basic.ics` answered with `text/calendar` (CRLF
// lines, folded at 75 octets, a VTIMEZONE per zone used). Each feed's body, status and delay
// can be changed by the test; every request is recorded.

import { startFakeHttp } from './http.mjs';

/** Folds a content line at 75 octets (RFC 5545 §3.1), as Google's writer does. */
function fold(line) {
  const out = [];
  let rest = Buffer.from(line, 'utf8');
  let limit = 75;
  while (rest.length > limit) {
    let cut = limit;
    while (cut > 0 && (rest[cut] & 0xc0) === 0x80) cut--; // never inside a UTF-8 sequence
    out.push(rest.subarray(0, cut).toString('utf8'));
    rest = rest.subarray(cut);
    limit = 74; // the leading space of a continuation line counts
  }
  out.push(rest.toString('utf8'));
  return out.join('\r\n ');
}

/** A VCALENDAR in Google's export shape around `events` (arrays of content lines). */
export function googleCalendar({ name = 'Practice', zone = 'Europe/Berlin', events = [] } = {}) {
  const lines = [
    'BEGIN:VCALENDAR',
    'PRODID:-//Google Inc//Google Calendar 70.9054//EN',
    'VERSION:2.0',
    'CALSCALE:GREGORIAN',
    'METHOD:PUBLISH',
    `X-WR-CALNAME:${name}`,
    `X-WR-TIMEZONE:${zone}`,
    'BEGIN:VTIMEZONE',
    'TZID:Europe/Berlin',
    'X-LIC-LOCATION:Europe/Berlin',
    'BEGIN:DAYLIGHT',
    'TZOFFSETFROM:+0100',
    'TZOFFSETTO:+0200',
    'TZNAME:CEST',
    'DTSTART:19700329T020000',
    'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU',
    'END:DAYLIGHT',
    'BEGIN:STANDARD',
    'TZOFFSETFROM:+0200',
    'TZOFFSETTO:+0100',
    'TZNAME:CET',
    'DTSTART:19701025T030000',
    'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU',
    'END:STANDARD',
    'END:VTIMEZONE',
    ...events.flatMap((e) => ['BEGIN:VEVENT', ...e, 'END:VEVENT']),
    'END:VCALENDAR',
  ];
  return lines.map(fold).join('\r\n') + '\r\n';
}

/**
 * Starts the host. `feeds` maps a secret path to {body, status?, delayMs?}; change them later
 * through `feeds` (the object is live). Resolves to {url(path), requests, feeds, close()}.
 */
export async function startFakeIcalFeed(feeds = {}) {
  const http = await startFakeHttp({
    fallback: (req) => {
      const feed = feeds[req.path];
      if (!feed) return { status: 404, body: 'Not Found', headers: { 'content-type': 'text/plain' } };
      return {
        status: feed.status ?? 200,
        delayMs: feed.delayMs ?? 0,
        headers: { 'content-type': 'text/calendar; charset=UTF-8', 'cache-control': 'no-cache, no-store, max-age=0, must-revalidate' },
        body: feed.body ?? '',
      };
    },
  });
  return {
    url: (path) => `${http.url}${path}`,
    requests: http.requests,
    feeds,
    close: () => http.close(),
  };
}
