import { api, qs } from '../api.js';
import { h, table, badge, fmtTime, fmtMs, field, pageHeader, errorBox, showError, announce, pagedTable } from '../dom.js';

const STATUSES = ['pending', 'succeeded', 'failed', 'dead', 'canceled'];

async function replay(id, errors, after) {
  try {
    const res = await api('POST', `/deliveries/${encodeURIComponent(id)}/replay`);
    announce(`Delivery ${id} replayed; it is ${res.status}.`);
    after?.(res);
  } catch (err) {
    showError(errors, err);
  }
}

function replayButton(d, errors, after) {
  return h('button', {
    type: 'button', class: 'small', 'data-needs': 'operate', 'aria-label': `Replay delivery ${d.id}`,
    onclick: async (e) => {
      e.currentTarget.disabled = true;
      await replay(d.id, errors, after);
    },
  }, 'Replay');
}

export async function deliveriesPage(ctx) {
  const p = ctx.params;
  const filters = { status: p.get('status') ?? '', endpoint_id: p.get('endpoint_id') ?? '', event_id: p.get('event_id') ?? '' };
  const [page, endpoints] = await Promise.all([
    api('GET', `/deliveries${qs({ ...filters, limit: 50 })}`),
    api('GET', '/endpoints?limit=100').catch(() => ({ data: [] })),
  ]);
  const endpointUrl = new Map(endpoints.data.map((e) => [e.id, e.url]));
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s === 'dead' ? 'dead (dead-letter list)' : s)));
  const endpoint = h('select', { name: 'endpoint_id' }, h('option', { value: '' }, 'Any endpoint'),
    endpoints.data.map((e) => h('option', { value: e.id, selected: e.id === filters.endpoint_id }, e.url)));
  const eventId = h('input', { name: 'event_id', type: 'text', value: filters.event_id, autocomplete: 'off' });
  const errors = errorBox();
  const refresh = () => ctx.navigate(`#/deliveries${qs({ ...filters, r: Date.now() })}`);
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter deliveries',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/deliveries${qs({ status: status.value, endpoint_id: endpoint.value, event_id: eventId.value.trim() })}`);
    },
  }, field('Status', status), field('Endpoint', endpoint), field('Event id', eventId),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/deliveries') }, 'Clear')));

  const redrive = h('button', {
    type: 'button', id: 'redrive', 'data-needs': 'operate',
    onclick: async () => {
      const scope = filters.endpoint_id ? `of ${endpointUrl.get(filters.endpoint_id) ?? filters.endpoint_id}` : 'of every endpoint';
      if (!confirm(`Send every dead delivery ${scope} again?`)) return;
      redrive.disabled = true;
      try {
        const res = await api('POST', '/deliveries/redrive', filters.endpoint_id ? { endpoint_id: filters.endpoint_id } : {});
        announce(`${res.redriven} dead deliver${res.redriven === 1 ? 'y' : 'ies'} redriven.`);
        refresh();
      } catch (err) {
        showError(errors, err);
      } finally {
        redrive.disabled = false;
      }
    },
  }, 'Redrive dead');

  const columns = [
    { label: 'Delivery', cell: (d) => h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, d.id) },
    { label: 'Status', cell: (d) => badge(d.status) },
    { label: 'Attempts', cell: (d) => String(d.attempts) },
    { label: 'Last HTTP status', cell: (d) => d.last_status_code ?? (d.last_error ? 'error' : '—') },
    { label: 'Next attempt', cell: (d) => fmtTime(d.next_attempt_at) },
    { label: 'Endpoint', cell: (d) => endpointUrl.get(d.endpoint_id) ?? d.endpoint_id },
    { label: 'Event', cell: (d) => h('a', { href: `#/events/${encodeURIComponent(d.event_id)}` }, d.event_id) },
    { label: 'Actions', cell: (d) => (['dead', 'failed', 'canceled', 'succeeded'].includes(d.status) ? replayButton(d, errors, refresh) : '—') },
  ];
  const { list } = pagedTable({
    first: page, columns, errors, empty: 'No deliveries match.',
    more: (cursor) => api('GET', `/deliveries${qs({ ...filters, limit: 50, cursor })}`),
    caption: (rows) => `${rows.length} deliver${rows.length === 1 ? 'y' : 'ies'}${filters.status === 'dead' ? ' in the dead-letter list' : ''}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Deliveries',
      filters.status === 'dead' ? h('a', { class: 'button secondary', href: '#/deliveries' }, 'All deliveries')
        : h('a', { class: 'button secondary', href: '#/deliveries?status=dead' }, 'Dead-letter list'),
      redrive),
    form, errors, list);
}

export async function deliveryDetailPage(ctx, id) {
  const d = await api('GET', `/deliveries/${encodeURIComponent(id)}`);
  const endpoint = await api('GET', `/endpoints/${encodeURIComponent(d.endpoint_id)}`).catch(() => null);
  const errors = errorBox();
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Delivery ${d.id}`,
      h('button', {
        type: 'button', id: 'replay', 'data-needs': 'operate', onclick: async (e) => {
          e.currentTarget.disabled = true;
          await replay(d.id, errors, () => ctx.navigate(`#/deliveries/${encodeURIComponent(id)}?r=${Date.now()}`));
        },
      }, 'Replay')),
    errors,
    h('dl', { class: 'facts card' },
      h('dt', {}, 'Status'), h('dd', { id: 'delivery-status' }, badge(d.status)),
      h('dt', {}, 'Attempts'), h('dd', {}, String(d.attempts)),
      h('dt', {}, 'Next attempt'), h('dd', {}, fmtTime(d.next_attempt_at)),
      h('dt', {}, 'Last HTTP status'), h('dd', {}, d.last_status_code ?? '—'),
      h('dt', {}, 'Last error'), h('dd', {}, d.last_error ?? '—'),
      h('dt', {}, 'Endpoint'), h('dd', {}, endpoint ? `${endpoint.url} (${d.endpoint_id})` : d.endpoint_id),
      h('dt', {}, 'Event'), h('dd', {}, h('a', { href: `#/events/${encodeURIComponent(d.event_id)}` }, d.event_id))),
    h('section', { class: 'card', 'aria-labelledby': 'attempts-title' },
      h('h3', { id: 'attempts-title' }, 'Attempt log'),
      table({
        columns: [
          { label: '#', cell: (a) => String(a.attempt) },
          { label: 'At', cell: (a) => fmtTime(a.at) },
          { label: 'HTTP status', cell: (a) => (a.status_code != null ? String(a.status_code) : '—') },
          { label: 'Latency', cell: (a) => fmtMs(a.latency_ms) },
          { label: 'Response / error', cell: (a) => h('code', { class: 'detail' }, a.error ?? a.response ?? '') },
        ],
        rows: d.attempt_log ?? [],
        empty: 'No attempt yet.',
      })));
}
