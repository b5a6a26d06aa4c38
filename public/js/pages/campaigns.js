// Campaigns: start one from a CSV file (the file's text goes up as `csv`), follow each one's
// progress, pause / resume / cancel it, download its results. Starting and controlling need an
// operator key; any key reads (src/routes.rs).
import { api, session } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, submitForm } from '../dom.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
/** The counted statuses, in the order the bar shows them. */
const STATUSES = ['completed', 'in_progress', 'pending', 'no_answer', 'failed', 'opted_out', 'canceled', 'invalid'];

/** A progress bar of a campaign's rows plus its counts in words (never colour alone). */
function progressBar(c) {
  const p = c.progress ?? {};
  const total = STATUSES.reduce((n, s) => n + (p[s] ?? 0), 0) || 1;
  const done = (p.completed ?? 0) + (p.no_answer ?? 0) + (p.failed ?? 0) + (p.opted_out ?? 0) + (p.canceled ?? 0) + (p.invalid ?? 0);
  return h('div', { class: 'campaign-progress' },
    h('progress', { max: total, value: done, 'aria-label': `${c.name}: ${done} of ${total} rows done` }),
    h('ul', { class: 'campaign-counts' }, STATUSES.filter((s) => p[s]).map((s) => h('li', {}, badge(s), ` ${p[s]}`))));
}

/** Fetches the results CSV with the session key and saves it (a plain link would carry no key). */
async function download(c, errors) {
  try {
    const res = await fetch(`/api/v1/campaigns/${encodeURIComponent(c.id)}/export`, { headers: { authorization: `Bearer ${session.key}` } });
    if (!res.ok) throw new Error(`export failed: HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: `${c.name.replace(/[^\w.-]+/g, '_') || c.id}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    announce(`Results of ${c.name} downloaded.`);
  } catch (err) {
    showError(errors, err);
  }
}

export async function campaignsPage() {
  const [first, agents] = await Promise.all([api('GET', '/campaigns?limit=100'), api('GET', '/agents?limit=100')]);
  const errors = errorBox();
  const createErrors = errorBox();

  const name = h('input', { name: 'name', type: 'text', required: true, maxlength: 200, autocomplete: 'off' });
  const agent = h('select', { name: 'agent_id', required: true }, agents.data.map((a) => h('option', { value: a.id }, a.name)));
  const file = h('input', { name: 'csv', type: 'file', accept: '.csv,text/csv', required: true });
  const from = h('input', { name: 'from', type: 'time', value: '09:00', required: true });
  const to = h('input', { name: 'to', type: 'time', value: '20:00', required: true });
  const zone = h('input', { name: 'time_zone', type: 'text', placeholder: 'America/New_York', autocomplete: 'off' });
  const days = DAYS.map((d) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'days', value: d, checked: !['sat', 'sun'].includes(d) }), ` ${d}`));
  const perMinute = h('input', { name: 'calls_per_minute', type: 'number', min: 1, max: 1000, value: 10, required: true });
  const concurrent = h('input', { name: 'max_concurrent', type: 'number', min: 1, max: 500, value: 5, required: true });
  const report = h('div', { id: 'campaign-import' });
  // The form's starting values (set as properties, which a reset clears).
  const defaults = () => {
    from.value = '09:00';
    to.value = '20:00';
    perMinute.value = '10';
    concurrent.value = '5';
    for (const l of days) {
      const box = l.querySelector('input');
      box.checked = !['sat', 'sun'].includes(box.value);
    }
  };

  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-campaign-title', novalidate: true, 'data-needs': 'operate',
    onsubmit: submitForm(createErrors, async () => {
      report.replaceChildren();
      const chosen = file.files?.[0];
      if (!chosen) throw new Error('Choose a CSV file of contacts.');
      const body = {
        agent_id: agent.value,
        name: name.value.trim(),
        csv: await chosen.text(),
        window: {
          days: days.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
          from: from.value, to: to.value, ...(zone.value.trim() ? { time_zone: zone.value.trim() } : {}),
        },
        pacing: { calls_per_minute: Number(perMinute.value), max_concurrent: Number(concurrent.value) },
      };
      const created = await api('POST', '/campaigns', body);
      form.reset();
      defaults();
      announce(`Campaign ${created.name} started with ${created.import.contacts} contacts.`);
      report.replaceChildren(h('div', { class: 'card' },
        h('h3', {}, `“${created.name}”: ${created.import.contacts} contacts, ${created.import.invalid} not dialled`),
        created.import.errors.length ? h('ul', {}, created.import.errors.map((e) => h('li', {}, `line ${e.line}: `, h('code', {}, e.code), ` ${e.message}`))) : null,
        created.import.errors_truncated ? h('p', { class: 'muted' }, 'More rows were refused: see the campaign\'s rows.') : null));
      await redraw();
    }),
  },
  h('h3', { id: 'new-campaign-title' }, 'Start a campaign'),
  h('div', { class: 'row' }, field('Name', name), field('Agent', agent)),
  field('Contacts (CSV)', file, 'Header row: phone (E.164) required; name, email, time_zone optional; other columns become {{contact.*}} variables. Up to 100,000 rows.'),
  h('fieldset', {}, h('legend', {}, 'Calling window, on each contact\'s clocks'), h('div', { class: 'days' }, days),
    h('div', { class: 'row' }, field('From', from), field('To', to), field('Default time zone', zone, 'for rows without time_zone'))),
  h('div', { class: 'row' }, field('Calls per minute', perMinute), field('Calls at once', concurrent)),
  createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Start campaign')));

  const control = async (button, c, action) => {
    if (action === 'cancel' && !confirm(`Cancel “${c.name}”? Contacts not yet called will not be called.`)) return;
    button.disabled = true;
    try {
      await api('POST', `/campaigns/${encodeURIComponent(c.id)}/${action}`);
      announce(`Campaign ${c.name}: ${action}d.`);
      await redraw();
    } catch (err) {
      showError(errors, err);
      button.disabled = false;
    }
  };
  const actions = (c) => {
    const open = c.status === 'active' || c.status === 'paused';
    const button = (action, label, cls = 'small secondary') => h('button', {
      type: 'button', class: cls, 'data-needs': 'operate', 'aria-label': `${label} ${c.name}`,
      onclick: (ev) => control(ev.currentTarget, c, action),
    }, label);
    return h('div', { class: 'row-actions' },
      c.status === 'active' ? button('pause', 'Pause') : null,
      c.status === 'paused' ? button('resume', 'Resume') : null,
      open ? button('cancel', 'Cancel', 'small danger') : null,
      h('button', { type: 'button', class: 'small secondary', 'aria-label': `Download results of ${c.name}`, onclick: () => download(c, errors) }, 'Export CSV'));
  };
  const columns = [
    { label: 'Name', cell: (c) => h('span', {}, c.name, h('span', { class: 'muted' }, ` ${c.window.days.join(', ')} ${c.window.from}–${c.window.to}`)) },
    { label: 'Status', cell: (c) => badge(c.status) },
    { label: 'Progress', cell: progressBar },
    { label: 'Pacing', cell: (c) => `${c.pacing.calls_per_minute}/min, ${c.pacing.max_concurrent} at once` },
    { label: 'Started', cell: (c) => fmtTime(c.created_at) },
    { label: 'Actions', cell: actions },
  ];
  const list = h('div', { id: 'campaigns-list' });
  const draw = (rows) => list.replaceChildren(table({ caption: `${rows.length} campaign${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No campaigns yet.' }));
  const redraw = async () => draw((await api('GET', '/campaigns?limit=100')).data);
  defaults();
  draw(first.data);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Campaigns'),
    h('p', { class: 'muted' }, 'Bulk outbound calls: each contact is called once inside the window (on its own clocks), paced, retried per the agent\'s policy; numbers on the suppression list are skipped.'),
    errors, form, report, list);
}
