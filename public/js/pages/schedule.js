import { api } from '../api.js';
import { h, field, errorBox, showError, badge, fmtTime, pageHeader, announce } from '../dom.js';

/** IANA zone names the browser knows, always including its own zone and UTC. */
export function timeZones() {
  const own = browserZone();
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  return [...new Set([own, 'UTC', ...zones])].sort((a, b) => a.localeCompare(b));
}

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** `YYYY-MM-DDTHH:MM` for a datetime-local input, `minutes` from now, in the browser's zone. */
function localInputValue(minutes) {
  const d = new Date(Date.now() + minutes * 60_000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `YYYY-MM-DDTHH:MM` for a datetime-local input: the wall-clock time of `date` in `zone`. */
export function wallTimeIn(date, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

/** The time-zone picker: every zone the browser knows, `selected` chosen. */
export function timeZoneSelect(selected) {
  const zones = timeZones();
  if (selected && !zones.includes(selected)) zones.unshift(selected);
  return h('select', { name: 'time_zone', required: true },
    zones.map((z) => h('option', { value: z, selected: z === selected }, z.replaceAll('_', ' '))));
}

export async function schedulePage() {
  const agents = await api('GET', '/agents?limit=100');
  const zone = browserZone();
  const to = h('input', { name: 'to', type: 'tel', required: true, autocomplete: 'off', placeholder: '+15551234567', inputmode: 'tel', pattern: '\\+[1-9][0-9]{6,14}' });
  const agent = h('select', { name: 'agent_id', required: true },
    agents.data.length ? null : h('option', { value: '' }, 'No agents yet: create one through the API'),
    agents.data.map((a) => h('option', { value: a.id }, a.name)));
  const when = h('input', { name: 'local_time', type: 'datetime-local', required: true, value: localInputValue(60), step: 60 });
  const tz = timeZoneSelect(zone);
  const name = h('input', { name: 'name', type: 'text', autocomplete: 'name', dataset: { field: 'contact.name' } });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', dataset: { field: 'contact.email' } });
  const provider = h('select', { name: 'provider' },
    [['twilio', 'Twilio (our own agent)'], ['telnyx', 'Telnyx (our own agent)'], ['bland', 'Bland.ai']].map(([v, label]) => h('option', { value: v }, label)));
  const from = h('input', { name: 'from', type: 'tel', autocomplete: 'off', placeholder: 'agent’s number or DEFAULT_FROM_NUMBER', inputmode: 'tel' });
  const errors = errorBox();
  const result = h('div', { id: 'schedule-result', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Schedule call');
  let idempotencyKey = crypto.randomUUID();

  const form = h('form', {
    class: 'card', 'aria-labelledby': 'page-title', novalidate: true, 'data-needs': 'operate',
    onsubmit: async (e) => {
      e.preventDefault();
      showError(errors, null, form);
      if (!form.reportValidity()) return;
      const body = {
        to: to.value.trim(),
        agent_id: agent.value,
        local_time: when.value,
        time_zone: tz.value,
        provider: provider.value,
      };
      const contact = {};
      if (name.value.trim()) contact.name = name.value.trim();
      if (email.value.trim()) contact.email = email.value.trim();
      if (Object.keys(contact).length) body.contact = contact;
      if (from.value.trim()) body.from = from.value.trim();
      submit.disabled = true;
      try {
        // The same key on a double submit schedules one call.
        const call = await api('POST', '/calls', body, { headers: { 'idempotency-key': idempotencyKey } });
        idempotencyKey = crypto.randomUUID();
        announce(`Call ${call.id} scheduled.`);
        showResult(result, call);
        pollEmail(result, call);
      } catch (err) {
        if (err.code === 'idempotency_conflict') idempotencyKey = crypto.randomUUID();
        showError(errors, err, form);
      } finally {
        submit.disabled = false;
      }
    },
  },
  field('Phone number to call', to, 'E.164, e.g. +15551234567'),
  field('Agent', agent),
  h('div', { class: 'row' },
    field('Date and time', when, 'In the time zone you pick'),
    field('Time zone', tz, `Defaults to yours (${zone})`)),
  h('fieldset', {}, h('legend', {}, 'Contact (for the email confirmation)'),
    h('div', { class: 'row' }, field('Name', name), field('Email', email))),
  h('div', { class: 'row' }, field('Provider', provider), field('Caller id (optional)', from)),
  errors,
  h('div', { class: 'buttons' }, submit));

  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Schedule a call'), form, result);
}

function emailState(call) {
  if (!call.contact?.email) return 'no email (no contact email given)';
  const e = call.email;
  const state = call.email_status ?? e?.status ?? 'pending';
  return `${state}${e?.attempts ? ` after ${e.attempts} attempt${e.attempts === 1 ? '' : 's'}` : ''}${e?.last_error ? ` (${e.last_error})` : ''}`;
}

function showResult(box, call) {
  box.replaceChildren(h('div', { class: 'card success', id: 'schedule-confirmation', tabindex: '-1' },
    h('h3', {}, 'Call scheduled'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Call'), h('dd', {}, h('a', { href: `#/calls/${encodeURIComponent(call.id)}` }, call.id)),
      h('dt', {}, 'Status'), h('dd', { id: 'schedule-status' }, badge(call.status)),
      h('dt', {}, 'Starts'), h('dd', {}, `${fmtTime(call.start_at)}${call.time_zone ? ` (${call.time_zone})` : ''}`),
      h('dt', {}, 'Confirmation email'), h('dd', { id: 'schedule-email' }, emailState(call)))));
}

/** The email goes out after the answer: refresh its state a few times. */
async function pollEmail(box, call) {
  if (!call.contact?.email) return;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    if (!box.isConnected) return;
    let fresh;
    try {
      fresh = await api('GET', `/calls/${encodeURIComponent(call.id)}`);
    } catch {
      return;
    }
    const el = box.querySelector('#schedule-email');
    if (el) el.textContent = emailState(fresh);
    const st = box.querySelector('#schedule-status');
    if (st) st.replaceChildren(badge(fresh.status));
    if (['sent', 'failed', 'delivered'].includes(fresh.email_status)) return;
  }
}
