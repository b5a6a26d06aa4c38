// Who the logged-in key is (GET /api/v1/me) and the role-aware controls: an element marked
// data-needs="operate" | "administer" | "bootstrap" that the key cannot use is disabled with the
// reason (as its title, in visible text for forms, as screen-reader text for buttons), or hidden
// where a disabled control means nothing (navigation links, links to pages the key cannot use).

import { api, session } from './api.js';
import { h } from './dom.js';

/** What each role's key may do (src/routes.rs gates: Read < Operate < Administer; Bootstrap). */
const GRANTS = {
  viewer: new Set(),
  operator: new Set(['operate']),
  admin: new Set(['operate', 'administer']),
};

const NEED_LABEL = { operate: 'an operate key (operator or admin)', administer: 'an admin key', bootstrap: 'the bootstrap ADMIN_API_KEY' };

let cached = null;

/** The key's `{key_id, role, tenant_id, bootstrap}`, fetched once per key. */
export async function whoami() {
  const key = session.key;
  if (!key) return null;
  if (cached?.key !== key) cached = { key, me: api('GET', '/me') };
  try {
    return await cached.me;
  } catch (err) {
    cached = null;
    throw err;
  }
}

/** The key last fetched by whoami(), if it is still the session's. */
export function currentMe() {
  return cached?.key === session.key ? cached.settled ?? null : null;
}

/** Whether `me` may use a control that needs `need` (no need: anyone). */
export function allows(me, need) {
  if (!need) return true;
  if (!me) return false;
  if (need === 'bootstrap') return Boolean(me.bootstrap);
  return GRANTS[me.role]?.has(need) ?? false;
}

/** "Needs an admin key (this is a viewer key)." */
export function reason(me, need) {
  const what = me.bootstrap ? 'the bootstrap' : `${/^[aeiou]/.test(me.role) ? 'an' : 'a'} ${me.role}`;
  return `Needs ${NEED_LABEL[need] ?? need}; this is ${what} key.`;
}

const CONTROLS = 'button, input, select, textarea';

/** Applies `me`'s role to every [data-needs] element in `root` (and `root` itself). */
export function enforceRoles(root, me) {
  const marked = [...(root.matches?.('[data-needs]') ? [root] : []), ...root.querySelectorAll('[data-needs]')];
  for (const el of marked) {
    if (el.dataset.roleApplied) continue;
    const need = el.dataset.needs;
    if (allows(me, need)) continue;
    el.dataset.roleApplied = 'true';
    const why = reason(me, need);
    if (el.tagName === 'A' && el.closest('nav')) {
      // A navigation entry for a page the key cannot use leads nowhere: not offered at all.
      (el.closest('li') ?? el).hidden = true;
      continue;
    }
    el.title = why;
    if (el.tagName === 'A') {
      // An action link (e.g. "Schedule a call") stays in view, inert, saying why.
      el.removeAttribute('href');
      el.setAttribute('aria-disabled', 'true');
      el.classList.add('disabled');
      el.append(h('span', { class: 'sr-only' }, ` (${why})`));
      continue;
    }
    if (el.tagName === 'FORM' || el.tagName === 'FIELDSET') {
      for (const c of el.querySelectorAll(CONTROLS)) {
        c.disabled = true;
        c.title = why;
      }
      el.setAttribute('aria-disabled', 'true');
      el.prepend(h('p', { class: 'needs-note', role: 'note' }, why));
    } else if (el.matches(CONTROLS)) {
      el.disabled = true;
      el.append(h('span', { class: 'sr-only' }, ` (${why})`));
    } else {
      el.hidden = true;
    }
  }
}

// Page code sets `disabled = false` after its own work; a control the role forbids stays off.
const observer = new MutationObserver((records) => {
  const me = currentMe();
  if (!me) return;
  for (const r of records) {
    if (r.type === 'attributes') {
      const el = r.target;
      if (el.dataset?.roleApplied && el.matches(CONTROLS) && !el.disabled) el.disabled = true;
      continue;
    }
    for (const node of r.addedNodes) if (node.nodeType === 1) enforceRoles(node, me);
  }
});

/** Keeps `me`'s role applied to `root` as pages render and redraw. */
export function watchRoles(root, me) {
  cached.settled = me;
  enforceRoles(root, me);
  observer.disconnect();
  observer.observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ['disabled'] });
}

/** Forgets the cached identity (log out, refused key). */
export function forgetMe() {
  cached = null;
  observer.disconnect();
}
