import { api, qs } from '../api.js';
import { h, setChildren, badge, fmtTime, fmtDuration, fmtMs, field, pageHeader, errorBox, showError, pagedTable } from '../dom.js';
import { browserZone } from './schedule.js';

export const CALL_STATUSES = ['scheduled', 'dispatching', 'queued', 'ringing', 'in_progress', 'completed', 'no_answer', 'busy', 'failed', 'canceled'];
const LIVE_STATUSES = new Set(['ringing', 'in_progress', 'queued', 'dispatching']);

/** Call duration in seconds: the record's own figure, else answered → ended. */
export function callDuration(call) {
  if (call.duration_seconds != null) return call.duration_seconds;
  if (call.answered_at && call.ended_at) return (Date.parse(call.ended_at) - Date.parse(call.answered_at)) / 1000;
  return null;
}

/** Typical response latency: p50 of end of caller speech → first agent audio, when measured. */
export function callLatency(call) {
  const m = call.metrics;
  if (!m || typeof m !== 'object') return null;
  return m.first_audio_ms?.p50 ?? m.latency_ms ?? null;
}

/**
 * A call's time as the call sees it: the wall-clock time in the call's own zone, labelled with
 * that zone ("Dec 7, 2026, 1:07 PM (America/New_York)"), then the viewer's own time when it
 * reads differently. Without a zone (or with one the browser does not know), the viewer's time.
 */
export function zonedTime(value, zone) {
  const d = value ? new Date(value) : null;
  if (!d || Number.isNaN(d.getTime()) || !zone) return fmtTime(value);
  const viewer = browserZone();
  const at = (timeZone) => d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone });
  let there;
  try {
    there = at(zone);
  } catch {
    return fmtTime(value);
  }
  const mine = at(viewer);
  return h('span', { class: 'zoned-time' },
    h('time', { datetime: d.toISOString() }, `${there} (${zone})`),
    zone !== viewer && mine !== there ? h('span', { class: 'viewer-time' }, ` · ${mine} your time (${viewer})`) : null);
}

/** "inbound" / "outbound" with an arrow (decoration only). */
export function directionLabel(direction) {
  const arrow = { inbound: '↘', outbound: '↗' }[direction];
  if (!arrow) return '—';
  return h('span', { class: 'direction' }, h('span', { 'aria-hidden': 'true' }, `${arrow} `), direction);
}

export async function callsPage(ctx) {
  const p = ctx.params;
  const filters = { status: p.get('status') ?? '', direction: p.get('direction') ?? '', agent_id: p.get('agent_id') ?? '', from: p.get('from') ?? '', to: p.get('to') ?? '' };
  const [agents, page] = await Promise.all([
    api('GET', '/agents?limit=100').catch(() => ({ data: [] })),
    api('GET', `/calls${qs({ ...filters, from: dayStart(filters.from), to: dayStart(filters.to, 1), limit: 25 })}`),
  ]);
  const agentName = new Map(agents.data.map((a) => [a.id, a.name]));

  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'Any status'),
    CALL_STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s.replaceAll('_', ' '))));
  const direction = h('select', { name: 'direction' }, h('option', { value: '' }, 'Both directions'),
    ['inbound', 'outbound'].map((d) => h('option', { value: d, selected: d === filters.direction }, d)));
  const agent = h('select', { name: 'agent_id' }, h('option', { value: '' }, 'Any agent'),
    agents.data.map((a) => h('option', { value: a.id, selected: a.id === filters.agent_id }, a.name)));
  const from = h('input', { type: 'date', name: 'from', value: filters.from });
  const to = h('input', { type: 'date', name: 'to', value: filters.to });
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter calls',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/calls${qs({ status: status.value, direction: direction.value, agent_id: agent.value, from: from.value, to: to.value })}`);
    },
  },
  field('Status', status), field('Direction', direction), field('Agent', agent), field('Starts from', from), field('Starts before end of', to),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/calls') }, 'Clear')));

  const columns = [
    { label: 'Call', cell: (c) => h('a', { href: `#/calls/${encodeURIComponent(c.id)}` }, c.id) },
    { label: 'Direction', cell: (c) => directionLabel(c.direction) },
    { label: 'From', cell: (c) => c.from ?? '—' },
    { label: 'To', cell: (c) => c.to },
    { label: 'Status', cell: (c) => badge(c.status) },
    { label: 'Agent', cell: (c) => agentName.get(c.agent_id) ?? c.agent_id ?? '—' },
    { label: 'Starts', cell: (c) => (c.start_at ? zonedTime(c.start_at, c.time_zone) : fmtTime(c.created_at)) },
    { label: 'Duration', cell: (c) => fmtDuration(callDuration(c)) },
    { label: 'Latency (p50)', cell: (c) => fmtMs(callLatency(c)) },
    { label: 'Email', cell: (c) => c.email_status ?? '—' },
    { label: 'Live', cell: (c) => (LIVE_STATUSES.has(c.status) ? h('a', { href: `#/calls/${encodeURIComponent(c.id)}/live` }, 'Watch live') : '—') },
  ];
  const errors = errorBox();
  const { list } = pagedTable({
    id: 'calls-list', first: page, columns, errors, empty: 'No calls match these filters.',
    more: (cursor) => api('GET', `/calls${qs({ ...filters, from: dayStart(filters.from), to: dayStart(filters.to, 1), limit: 25, cursor })}`),
    caption: (rows) => `${rows.length} call${rows.length === 1 ? '' : 's'}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Calls', h('a', { class: 'button', href: '#/schedule', 'data-needs': 'operate' }, 'Schedule a call')),
    form, icsImport(ctx, agents.data), errors, list);
}

/**
 * "Import .ics": posts a calendar file to POST /api/v1/calls (text/calendar); each event becomes
 * a scheduled call of the chosen agent, floating times read in the browser's zone. Shows what
 * became of each event, refusals with their line.
 */
function icsImport(ctx, agents) {
  const agent = h('select', { name: 'ics_agent', required: true, 'data-needs': 'operate' },
    agents.map((a) => h('option', { value: a.id }, a.name)));
  const file = h('input', { type: 'file', name: 'ics_file', accept: '.ics,text/calendar', required: true, 'data-needs': 'operate' });
  const result = h('div', { id: 'ics-result', role: 'status' });
  const errors = errorBox();
  const form = h('form', {
    class: 'filters ics-import', 'aria-label': 'Import calls from a calendar file',
    onsubmit: async (e) => {
      e.preventDefault();
      const chosen = file.files?.[0];
      if (!chosen || !agent.value) return;
      setChildren(result);
      try {
        const text = await chosen.text();
        const out = await api('POST', `/calls${qs({ agent_id: agent.value, time_zone: browserZone() })}`, undefined, { raw: { type: 'text/calendar', text } });
        const refused = out.events.filter((ev) => ev.result === 'refused');
        setChildren(result,
          h('p', {}, `${out.created} created, ${out.updated} updated, ${out.unchanged} unchanged, ${out.refused} refused.`),
          refused.length ? h('ul', { class: 'ics-refused' }, refused.map((ev) => h('li', {}, `Line ${ev.line}${ev.uid ? ` (${ev.uid})` : ''}: ${ev.error.message}`))) : null,
          h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate(`#/calls?refresh=${Date.now()}`) }, 'Show the calls'));
      } catch (err) {
        showError(errors, err);
      }
    },
  },
  field('Agent making the calls', agent), field('Calendar file (.ics)', file, 'Each event becomes a call: the number from a tel: attendee, X-PHONE or LOCATION.'),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit', 'data-needs': 'operate' }, 'Import .ics')));
  return h('details', { class: 'ics-import' }, h('summary', {}, 'Import calls from a calendar (.ics)'), form, errors, result);
}

/** `YYYY-MM-DD` (local) → RFC 3339 of that local midnight, plus `days`. */
function dayStart(date, days = 0) {
  if (!date) return '';
  const [y, m, d] = date.split('-').map(Number);
  return new Date(y, m - 1, d + days).toISOString();
}
