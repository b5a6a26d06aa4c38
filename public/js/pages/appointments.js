// Appointments agents booked on their calendars (any role): the list (status, agent, caller,
// time in the calendar's zone), one appointment with its invitation emails, and for operate keys
// rescheduling (a wall-clock time in the calendar's zone) and canceling.
import { api, qs } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, json, pagedTable } from '../dom.js';
import { zonedTime } from './calls.js';
import { wallTimeIn } from './schedule.js';

const STATUSES = ['booked', 'canceled'];

/** Milliseconds `zone` is ahead of UTC at the instant `ms`. */
function zoneOffset(ms, zone) {
  const wall = wallTimeIn(new Date(ms), zone);
  const seconds = new Date(ms).getUTCSeconds();
  return Date.parse(`${wall}:${String(seconds).padStart(2, '0')}Z`) - Math.floor(ms / 1000) * 1000;
}

/**
 * RFC 3339 (with its offset) of the wall-clock time `local` (`YYYY-MM-DDTHH:MM`) in `zone`: the
 * offset in force then, found by asking the zone twice (once more across a DST change).
 */
export function zonedToRfc3339(local, zone) {
  const naive = Date.parse(`${local}:00Z`);
  let offset = zoneOffset(naive, zone);
  offset = zoneOffset(naive - offset, zone);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset) / 60_000;
  const pad = (n) => String(n).padStart(2, '0');
  return `${local}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export async function appointmentsPage(ctx) {
  const p = ctx.params;
  const filters = { status: p.get('status') ?? '', agent_id: p.get('agent_id') ?? '' };
  const [agents, page] = await Promise.all([
    api('GET', '/agents?limit=100').catch(() => ({ data: [] })),
    api('GET', `/appointments${qs({ ...filters, limit: 25 })}`),
  ]);
  const agentName = new Map(agents.data.map((a) => [a.id, a.name]));
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const agent = h('select', { name: 'agent_id' }, h('option', { value: '' }, 'Any agent'),
    agents.data.filter((a) => a.calendar).map((a) => h('option', { value: a.id, selected: a.id === filters.agent_id }, a.name)));
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter appointments',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/appointments${qs({ status: status.value, agent_id: agent.value })}`);
    },
  }, field('Status', status), field('Agent', agent),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/appointments') }, 'Clear')));

  const columns = [
    { label: 'Appointment', cell: (a) => h('a', { href: `#/appointments/${encodeURIComponent(a.id)}` }, a.id) },
    { label: 'Starts', cell: (a) => zonedTime(a.start_at, a.time_zone) },
    { label: 'Status', cell: (a) => badge(a.status) },
    { label: 'Agent', cell: (a) => agentName.get(a.agent_id) ?? a.agent_id },
    { label: 'Name', cell: (a) => a.name ?? '—' },
    { label: 'Caller', cell: (a) => a.caller_number ?? '—' },
    { label: 'Email', cell: (a) => a.email ?? '—' },
    { label: 'Booked by', cell: (a) => (a.call_id ? h('a', { href: `#/calls/${encodeURIComponent(a.call_id)}` }, 'call') : 'API') },
  ];
  const errors = errorBox();
  const { list } = pagedTable({
    id: 'appointments-list', first: page, columns, errors, empty: 'No appointments match these filters.',
    more: (cursor) => api('GET', `/appointments${qs({ ...filters, limit: 25, cursor })}`),
    caption: (rows) => `${rows.length} appointment${rows.length === 1 ? '' : 's'}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Appointments'), form, errors, list);
}

/** The reschedule form: a new wall-clock start in the calendar's own zone. */
function rescheduleForm(ctx, appointment) {
  const errors = errorBox();
  const zone = appointment.time_zone;
  const when = h('input', { name: 'start_at', type: 'datetime-local', required: true, step: 60, value: wallTimeIn(new Date(appointment.start_at), zone) });
  const submit = h('button', { type: 'submit' }, 'Reschedule');
  const form = h('form', {
    class: 'card reschedule', 'aria-labelledby': 'reschedule-title', 'data-needs': 'operate', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      showError(errors, null, form);
      if (!form.reportValidity()) return;
      submit.disabled = true;
      try {
        await api('POST', `/appointments/${encodeURIComponent(appointment.id)}/reschedule`, { start_at: zonedToRfc3339(when.value, zone) });
        announce(`Appointment ${appointment.id} moved to ${when.value.replace('T', ' ')} (${zone}).`);
        ctx.navigate(`#/appointments/${encodeURIComponent(appointment.id)}?r=${Date.now()}`);
      } catch (err) {
        submit.disabled = false;
        showError(errors, err, form);
      }
    },
  },
  h('h3', { id: 'reschedule-title' }, 'Reschedule'),
  h('div', { class: 'row' }, field('New start', when, `In the calendar's zone (${zone}); it must be a free slot of the agent's hours`)),
  errors,
  h('div', { class: 'buttons' }, submit));
  return form;
}

export async function appointmentDetailPage(ctx, id) {
  const appointment = await api('GET', `/appointments/${encodeURIComponent(id)}`);
  const agent = await api('GET', `/agents/${encodeURIComponent(appointment.agent_id)}`).catch(() => null);
  const errors = errorBox();
  const booked = appointment.status === 'booked';
  const cancel = booked ? h('button', {
    type: 'button', class: 'danger', 'data-needs': 'operate', onclick: async (e) => {
      if (!confirm(`Cancel appointment ${id}?`)) return;
      e.target.disabled = true;
      try {
        await api('POST', `/appointments/${encodeURIComponent(id)}/cancel`);
        announce(`Appointment ${id} canceled.`);
        ctx.navigate(`#/appointments/${encodeURIComponent(id)}?r=${Date.now()}`);
      } catch (err) {
        e.target.disabled = false;
        showError(errors, err);
      }
    },
  }, 'Cancel appointment') : null;
  const dl = (pairs) => h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Appointment ${appointment.id}`, cancel),
    errors,
    h('section', { class: 'card', 'aria-labelledby': 'facts-title' },
      h('h3', { id: 'facts-title' }, 'Details'),
      dl([
        ['Status', badge(appointment.status)],
        ['Starts', zonedTime(appointment.start_at, appointment.time_zone)],
        ['Ends', zonedTime(appointment.end_at, appointment.time_zone)],
        ['Agent', h('a', { href: `#/agents/${encodeURIComponent(appointment.agent_id)}` }, agent?.name ?? appointment.agent_id)],
        ['Booked by', appointment.call_id ? h('a', { href: `#/calls/${encodeURIComponent(appointment.call_id)}` }, appointment.call_id) : 'API'],
        ['Caller', appointment.caller_number],
        ['Name', appointment.name],
        ['Email', appointment.email],
        ['Note', appointment.note],
        ['Changes', String(appointment.sequence)],
        ['Booked at', fmtTime(appointment.created_at)],
      ])),
    booked ? rescheduleForm(ctx, appointment) : null,
    h('section', { class: 'card', 'aria-labelledby': 'emails-title' },
      h('h3', { id: 'emails-title' }, 'Invitations'),
      table({
        columns: [
          { label: 'Kind', cell: (e) => e.kind }, { label: 'Sequence', cell: (e) => String(e.sequence) },
          { label: 'Status', cell: (e) => badge(e.status) }, { label: 'Attempts', cell: (e) => String(e.attempts) },
          { label: 'Last error', cell: (e) => e.last_error ?? '—' }, { label: 'Created', cell: (e) => fmtTime(e.created_at) },
        ],
        rows: appointment.emails ?? [],
        empty: 'No invitations: the appointment has no email address.',
      })),
    h('details', { class: 'raw' }, h('summary', {}, 'Raw record'), json(appointment)));
}
