// Small DOM helpers: element builder, formatting, tables, error boxes, status announcements.

/** h('a', {href: '#/', class: 'x', onclick}, 'text', child, [more]) → element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

/** Replaces `el`'s children, skipping null/false (unlike replaceChildren, which prints them). */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** SVG element builder (same shape as h). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  append(el, children);
  return el;
}

/** Announces a status message in the page's polite live region. */
export function announce(message) {
  const region = document.getElementById('status');
  if (!region) return;
  region.textContent = '';
  // A fresh text node so screen readers re-read identical messages.
  requestAnimationFrame(() => {
    region.textContent = message;
  });
}

export function fmtTime(value) {
  if (!value) return '—';
  const d = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function fmtMs(ms) {
  if (ms === undefined || ms === null) return '—';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null) return '—';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return m ? `${m} min ${String(s % 60).padStart(2, '0')} s` : `${s} s`;
}

/** A status pill; the text is the status itself so it never relies on colour alone. */
export function badge(status) {
  const s = String(status ?? 'unknown');
  return h('span', { class: `badge badge-${s.replace(/[^a-z0-9_-]/gi, '')}` }, s.replaceAll('_', ' '));
}

/** Responsive table: columns [{label, cell: (row) => node|string}], each cell labelled for narrow screens. */
export function table({ caption, columns, rows, empty = 'Nothing yet.' }) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, rows.map((row) => h('tr', { dataset: row.id ? { id: row.id } : {} },
        columns.map((c) => h('td', { 'data-label': c.label }, c.cell(row) ?? '—')))))));
}

/** Renders an API error (message, request id, field details) into `box`; marks invalid inputs of `form`. */
export function showError(box, err, form) {
  box.replaceChildren();
  if (form) {
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      const note = document.getElementById(`${el.id}-error`);
      if (note) note.remove();
    }
  }
  if (!err) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.append(h('p', {}, h('strong', {}, 'Error: '), err.message || String(err),
    err.code ? h('span', { class: 'muted' }, ` (${err.code}${err.requestId ? `, request ${err.requestId}` : ''})`) : null));
  if (err.details?.length) {
    box.append(h('ul', {}, err.details.map((d) => h('li', {}, h('code', {}, d.field ?? '?'), `: ${d.message ?? d.code}`))));
    if (form) {
      for (const d of err.details) {
        const input = findField(form, d.field);
        if (!input) continue;
        input.setAttribute('aria-invalid', 'true');
        const note = h('span', { class: 'field-error', id: `${input.id}-error` }, d.message ?? d.code);
        input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), note.id].filter(Boolean).join(' '));
        input.insertAdjacentElement('afterend', note);
      }
    }
  }
  box.focus();
}

function findField(form, field) {
  if (!field) return null;
  const names = [field, field.split('.').at(-1), field.replace(/\[\d+\]$/, '')];
  for (const n of names) {
    const el = form.querySelector(`[data-field="${CSS.escape(n)}"]`) || form.elements.namedItem(n);
    if (el instanceof HTMLElement) return el;
  }
  return null;
}

/** A labelled form control: label + input/select/textarea with a stable id. */
export function field(label, control, hint) {
  const id = control.id || `f-${control.name || Math.random().toString(36).slice(2)}`;
  control.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** An error box for forms: focusable, announced. */
export function errorBox() {
  return h('div', { class: 'error-box', role: 'alert', tabindex: '-1', hidden: true });
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h2', { id: 'page-title', tabindex: '-1' }, title), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/**
 * A `{data, next_cursor}` list as a table with "Load more": `more(cursor)` fetches a page
 * (`more()` the first again, for `reload`); a failed fetch shows in `errors`.
 * `caption(rows, hasMore)` labels the table. Returns the list's element and `reload`.
 */
export function pagedTable({ id, first, more, columns, caption, empty, errors }) {
  const list = h('div', id ? { id } : {});
  let rows = [];
  const draw = (page, append) => {
    rows = append ? rows.concat(page.data) : page.data;
    setChildren(list,
      table({ caption: caption(rows, Boolean(page.next_cursor)), columns, rows, empty }),
      page.next_cursor ? h('button', {
        type: 'button', class: 'secondary', onclick: async () => {
          try {
            draw(await more(page.next_cursor), true);
          } catch (err) {
            showError(errors, err);
          }
        },
      }, 'Load more') : null);
  };
  draw(first, false);
  return { list, reload: async () => draw(await more(), false) };
}

export function json(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/**
 * A button copying `text` to the clipboard. Where the Clipboard API is missing or refused (no
 * secure context, permission denied) it selects `selectTarget` and tries the legacy copy command,
 * leaving the text selected for a manual copy. The outcome goes to `status` (if given) and the
 * page's live region.
 */
export function copyButton(text, { label = 'Copy', what = null, selectTarget = null, status = null } = {}) {
  // Unnamed, the button is just "Copy": beside a labelled field, naming the field again would
  // make the field's label match the button too.
  const button = h('button', { type: 'button', class: 'small secondary copy', 'aria-label': what ? `${label} ${what}` : null }, label);
  button.addEventListener('click', async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      if (selectTarget instanceof HTMLInputElement) {
        selectTarget.focus();
        selectTarget.select();
      } else if (selectTarget) {
        window.getSelection()?.selectAllChildren(selectTarget);
      }
      try {
        copied = document.execCommand('copy');
      } catch {
        copied = false;
      }
    }
    button.textContent = copied ? 'Copied' : 'Selected: press Ctrl+C';
    if (status) status.textContent = copied ? 'Copied.' : 'Selected: press Ctrl+C (⌘C) to copy.';
    announce(copied ? 'Copied to the clipboard.' : 'Could not use the clipboard; the text is selected for copying.');
  });
  return button;
}

/** A secret shown once (new API key, a tenant's first key): a read-only field with a Copy button. */
export function secretOnce({ title, label, secret, note }) {
  const input = h('input', { type: 'text', readOnly: true, value: secret, class: 'secret', spellcheck: false, autocomplete: 'off' });
  const status = h('span', { class: 'copy-status', role: 'status' });
  const copy = copyButton(secret, { selectTarget: input, status });
  const card = h('div', { class: 'card success secret-once', tabindex: '-1' },
    h('h3', {}, title),
    note ? h('p', {}, note) : null,
    h('div', { class: 'secret-row' }, field(label, input), copy),
    status);
  queueMicrotask(() => card.focus());
  return card;
}

/**
 * An `onsubmit` handler: checks the form, keeps its submit button disabled while `run(form)`
 * works, and shows a refusal in `errors` with each invalid field marked.
 */
export function submitForm(errors, run) {
  return async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    showError(errors, null, form);
    if (!form.reportValidity()) return;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await run(form);
    } catch (err) {
      showError(errors, err, form);
    } finally {
      button.disabled = false;
    }
  };
}
