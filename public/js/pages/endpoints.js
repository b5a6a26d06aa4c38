import { api } from '../api.js';
import { h, table, badge, fmtTime, field, pageHeader, errorBox, showError, announce } from '../dom.js';

/** Shows a secret once, with the note that it will not be shown again. */
function secretNotice(box, title, secret) {
  box.replaceChildren(h('div', { class: 'card success', tabindex: '-1', id: 'secret-notice' },
    h('h3', {}, title),
    h('p', {}, 'Signing secret (shown once; store it where your endpoint verifies webhooks):'),
    h('p', {}, h('code', { class: 'secret' }, secret))));
  box.firstChild.focus();
}

export async function endpointsPage(ctx) {
  const page = await api('GET', '/endpoints?limit=100');
  const notice = h('div', { 'aria-live': 'polite' });
  const errors = errorBox();

  const url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://example.com/webhooks', autocomplete: 'off' });
  const types = h('input', { name: 'event_types', type: 'text', placeholder: 'call.*, email.delivered', autocomplete: 'off' });
  const description = h('input', { name: 'description', type: 'text', autocomplete: 'off' });
  const createErrors = errorBox();
  const form = h('form', {
    class: 'card', 'aria-labelledby': 'new-endpoint-title', novalidate: true, 'data-needs': 'administer',
    onsubmit: async (e) => {
      e.preventDefault();
      showError(createErrors, null, form);
      if (!form.reportValidity()) return;
      const list = types.value.split(',').map((t) => t.trim()).filter(Boolean);
      const body = { url: url.value.trim(), event_types: list.length ? list : null };
      if (description.value.trim()) body.description = description.value.trim();
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const created = await api('POST', '/endpoints', body);
        form.reset();
        announce(`Endpoint ${created.id} created.`);
        await redraw();
        secretNotice(notice, `Endpoint ${created.id} created`, created.secret);
      } catch (err) {
        showError(createErrors, err, form);
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h3', { id: 'new-endpoint-title' }, 'Add an endpoint'),
  field('URL', url),
  field('Event types', types, 'Comma-separated: exact types, prefix.* or *; empty for every event'),
  field('Description', description),
  createErrors,
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Add endpoint')));

  const act = async (button, fn) => {
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      showError(errors, err);
    } finally {
      button.disabled = false;
    }
  };
  const columns = [
    { label: 'URL', cell: (e) => h('span', { class: 'url' }, e.url) },
    { label: 'Status', cell: (e) => [badge(e.status), e.disabled_reason ? h('span', { class: 'muted' }, ` ${e.disabled_reason}`) : null] },
    { label: 'Event types', cell: (e) => (e.event_types ? e.event_types.join(', ') : 'every event') },
    { label: 'Description', cell: (e) => e.description ?? '—' },
    { label: 'Created', cell: (e) => fmtTime(e.created_at) },
    {
      label: 'Actions',
      cell: (e) => h('div', { class: 'row-actions' },
        h('button', {
          type: 'button', class: 'small secondary', 'data-needs': 'administer', 'aria-label': `${e.status === 'enabled' ? 'Pause' : 'Resume'} ${e.url}`,
          onclick: (ev) => act(ev.currentTarget, async () => {
            const next = e.status === 'enabled' ? 'paused' : 'enabled';
            await api('PATCH', `/endpoints/${encodeURIComponent(e.id)}`, { status: next });
            announce(`Endpoint ${e.url} ${next === 'paused' ? 'paused' : 'resumed'}.`);
            await redraw();
          }),
        }, e.status === 'enabled' ? 'Pause' : 'Resume'),
        h('button', {
          type: 'button', class: 'small secondary', 'data-needs': 'administer', 'aria-label': `Rotate secret of ${e.url}`,
          onclick: (ev) => act(ev.currentTarget, async () => {
            if (!confirm('Rotate the signing secret? The old one keeps signing for 24 hours.')) return;
            const rotated = await api('POST', `/endpoints/${encodeURIComponent(e.id)}/rotate-secret`, {});
            announce('Secret rotated.');
            await redraw();
            secretNotice(notice, `New secret for ${e.url}`, rotated.secret);
          }),
        }, 'Rotate secret'),
        h('button', {
          type: 'button', class: 'small danger', 'data-needs': 'administer', 'aria-label': `Delete ${e.url}`,
          onclick: (ev) => act(ev.currentTarget, async () => {
            if (!confirm(`Delete ${e.url}? Pending deliveries to it are canceled.`)) return;
            await api('DELETE', `/endpoints/${encodeURIComponent(e.id)}`);
            announce('Endpoint deleted.');
            await redraw();
          }),
        }, 'Delete')),
    },
  ];
  const list = h('div', { id: 'endpoints-list' });
  const draw = (rows) => list.replaceChildren(table({ caption: `${rows.length} endpoint${rows.length === 1 ? '' : 's'}`, columns, rows, empty: 'No endpoints yet.' }));
  const redraw = async () => draw((await api('GET', '/endpoints?limit=100')).data);
  draw(page.data);
  return h('section', { 'aria-labelledby': 'page-title' }, pageHeader('Endpoints'), errors, notice, list, form);
}
