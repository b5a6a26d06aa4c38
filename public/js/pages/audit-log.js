// The audit log (admin keys): every change made through the API, newest first, narrowed by
// actor, action, resource and time (the filters GET /api/v1/audit-log takes), cursor-paged.
import { api, qs } from '../api.js';
import { h, fmtTime, field, pageHeader, errorBox, json, pagedTable } from '../dom.js';

const FILTERS = ['actor', 'action', 'resource_type', 'resource_id', 'from', 'to'];

/** `YYYY-MM-DDTHH:MM` (local, from a datetime-local input) → RFC 3339 with offset. */
function instant(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
}

export async function auditLogPage(ctx) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, ctx.params.get(f) ?? '']));
  const query = (extra) => `/audit-log${qs({ ...filters, from: instant(filters.from), to: instant(filters.to), limit: 50, ...extra })}`;
  const [keys, first] = await Promise.all([
    api('GET', '/api-keys?limit=100').catch(() => ({ data: [] })),
    api('GET', query()),
  ]);
  const keyName = new Map(keys.data.map((k) => [k.id, k.name]));
  const actorLabel = (actor) => (actor === 'admin' ? 'ADMIN_API_KEY' : keyName.has(actor) ? `${keyName.get(actor)} (${actor})` : actor);

  const actor = h('select', { name: 'actor' },
    h('option', { value: '' }, 'Anyone'),
    h('option', { value: 'admin', selected: filters.actor === 'admin' }, 'ADMIN_API_KEY (bootstrap)'),
    keys.data.map((k) => h('option', { value: k.id, selected: k.id === filters.actor }, `${k.name} (${k.role})`)),
    // A filter on a key not listed (e.g. from a link) stays selectable.
    filters.actor && filters.actor !== 'admin' && !keyName.has(filters.actor) ? h('option', { value: filters.actor, selected: true }, filters.actor) : null);
  const seen = (column) => [...new Set(first.data.map((e) => e[column]).concat(filters[column]).filter(Boolean))].sort();
  const action = h('input', { name: 'action', type: 'text', value: filters.action, list: 'audit-actions', autocomplete: 'off', placeholder: 'e.g. api_key.create' });
  const resourceType = h('input', { name: 'resource_type', type: 'text', value: filters.resource_type, list: 'audit-types', autocomplete: 'off', placeholder: 'e.g. endpoint' });
  const resourceId = h('input', { name: 'resource_id', type: 'text', value: filters.resource_id, autocomplete: 'off' });
  const from = h('input', { name: 'from', type: 'datetime-local', value: filters.from });
  const to = h('input', { name: 'to', type: 'datetime-local', value: filters.to });
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter the audit log',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/audit-log${qs({ actor: actor.value, action: action.value.trim(), resource_type: resourceType.value.trim(), resource_id: resourceId.value.trim(), from: from.value, to: to.value })}`);
    },
  },
  field('Actor', actor), field('Action', action), field('Resource type', resourceType), field('Resource id', resourceId),
  field('From', from), field('Before', to),
  h('datalist', { id: 'audit-actions' }, seen('action').map((a) => h('option', { value: a }))),
  h('datalist', { id: 'audit-types' }, seen('resource_type').map((t) => h('option', { value: t }))),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/audit-log') }, 'Clear')));

  const change = (e) => (e.before == null && e.after == null ? '—' : h('details', {},
    h('summary', {}, 'Before / after'),
    e.before != null ? [h('p', { class: 'muted' }, 'Before'), json(e.before)] : null,
    e.after != null ? [h('p', { class: 'muted' }, 'After'), json(e.after)] : null));
  const columns = [
    { label: 'Time', cell: (e) => h('time', { datetime: e.at }, fmtTime(e.at)) },
    { label: 'Actor', cell: (e) => actorLabel(e.actor) },
    { label: 'Action', cell: (e) => h('code', {}, e.action) },
    { label: 'Resource', cell: (e) => h('span', {}, e.resource_type, e.resource_id ? [' ', h('code', {}, e.resource_id)] : null) },
    { label: 'Request', cell: (e) => h('code', { class: 'detail' }, e.request_id) },
    { label: 'Change', cell: change },
  ];
  const errors = errorBox();
  const { list } = pagedTable({
    id: 'audit-list', first, columns, errors, empty: 'No entries match these filters.',
    more: (cursor) => api('GET', query({ cursor })),
    caption: (rows, more) => `${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}${more ? ' (more below)' : ''}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Audit log'),
    h('p', { class: 'muted' }, 'Every change made through the API: who, what, before and after (never secrets), and the request id.'),
    form, errors, list);
}
