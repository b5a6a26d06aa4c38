import { api, qs } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce, json, pagedTable } from '../dom.js';

export async function eventsPage(ctx) {
  const p = ctx.params;
  const filters = { type: p.get('type') ?? '', provider: p.get('provider') ?? '', call_id: p.get('call_id') ?? '' };
  const page = await api('GET', `/events${qs({ ...filters, limit: 50 })}`);
  const type = h('input', { name: 'type', type: 'text', value: filters.type, placeholder: 'call.completed', autocomplete: 'off' });
  const provider = h('select', { name: 'provider' }, h('option', { value: '' }, 'Any provider'),
    ['resend', 'twilio', 'telnyx', 'bland', 'retell', 'vapi', 'exotel', 'standard', 'phone-agent'].map((v) => h('option', { value: v, selected: v === filters.provider }, v)));
  const callId = h('input', { name: 'call_id', type: 'text', value: filters.call_id, autocomplete: 'off' });
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter events',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/events${qs({ type: type.value.trim(), provider: provider.value, call_id: callId.value.trim() })}`);
    },
  }, field('Type', type), field('Provider', provider), field('Call id', callId),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/events') }, 'Clear')));

  const columns = [
    { label: 'Event', cell: (e) => h('a', { href: `#/events/${encodeURIComponent(e.id)}` }, e.id) },
    { label: 'Type', cell: (e) => h('code', {}, e.type) },
    { label: 'Provider', cell: (e) => e.provider },
    { label: 'Call', cell: (e) => (e.call_id ? h('a', { href: `#/calls/${encodeURIComponent(e.call_id)}` }, e.call_id) : '—') },
    { label: 'Received', cell: (e) => fmtTime(e.received_at) },
  ];
  const errors = errorBox();
  const { list } = pagedTable({
    first: page, columns, errors, empty: 'No events match.',
    more: (cursor) => api('GET', `/events${qs({ ...filters, limit: 50, cursor })}`),
    caption: (rows) => `${rows.length} event${rows.length === 1 ? '' : 's'}`,
  });
  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Webhook events'), form, errors, list);
}

export async function eventDetailPage(ctx, id) {
  const [event, endpoints] = await Promise.all([
    api('GET', `/events/${encodeURIComponent(id)}`),
    api('GET', '/endpoints?limit=100').catch(() => ({ data: [] })),
  ]);
  const errors = errorBox();
  const target = h('select', { name: 'endpoint_id' }, h('option', { value: '' }, 'Every matching endpoint'),
    endpoints.data.map((e) => h('option', { value: e.id }, e.url)));
  const replay = h('form', {
    class: 'inline-form', 'data-needs': 'operate', onsubmit: async (e) => {
      e.preventDefault();
      const button = e.target.querySelector('button');
      button.disabled = true;
      try {
        const res = await api('POST', `/events/${encodeURIComponent(id)}/replay`, target.value ? { endpoint_id: target.value } : {});
        announce(`Event replayed to ${res.replayed ?? 'its'} endpoint(s).`);
        ctx.navigate(`#/events/${encodeURIComponent(id)}?r=${Date.now()}`);
      } catch (err) {
        showError(errors, err);
      } finally {
        button.disabled = false;
      }
    },
  }, field('Replay to', target), h('button', { type: 'submit' }, 'Replay event'));
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Event ${event.id}`),
    errors,
    h('dl', { class: 'facts card' },
      h('dt', {}, 'Type'), h('dd', {}, h('code', {}, event.type)),
      h('dt', {}, 'Provider'), h('dd', {}, event.provider),
      h('dt', {}, 'Provider event id'), h('dd', {}, event.provider_event_id),
      h('dt', {}, 'Call'), h('dd', {}, event.call_id ? h('a', { href: `#/calls/${encodeURIComponent(event.call_id)}` }, event.call_id) : '—'),
      h('dt', {}, 'Received'), h('dd', {}, fmtTime(event.received_at))),
    h('section', { class: 'card', 'aria-labelledby': 'ev-deliveries' },
      h('h3', { id: 'ev-deliveries' }, 'Deliveries'),
      table({
        columns: [
          { label: 'Delivery', cell: (d) => h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}` }, d.id) },
          { label: 'Endpoint', cell: (d) => d.endpoint_id },
          { label: 'Status', cell: (d) => badge(d.status) },
          { label: 'Attempts', cell: (d) => String(d.attempts) },
          { label: 'Last HTTP status', cell: (d) => d.last_status_code ?? '—' },
        ],
        rows: event.deliveries ?? [],
        empty: 'Not forwarded to any endpoint.',
      }),
      replay),
    h('section', { class: 'card', 'aria-labelledby': 'ev-payload' }, h('h3', { id: 'ev-payload' }, 'Payload'), json(event.payload)));
}
