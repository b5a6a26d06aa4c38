// phone-agent dashboard: plain ES modules, hash routing, no build step, no external assets.
import { session } from './js/api.js';
import { h, announce } from './js/dom.js';
import { loginPage } from './js/pages/login.js';
import { callsPage } from './js/pages/calls.js';
import { callDetailPage } from './js/pages/call-detail.js';
import { livePage } from './js/pages/live.js';
import { schedulePage } from './js/pages/schedule.js';
import { eventsPage, eventDetailPage } from './js/pages/events.js';
import { deliveriesPage, deliveryDetailPage } from './js/pages/deliveries.js';
import { endpointsPage } from './js/pages/endpoints.js';
import { agentsPage, agentFormPage } from './js/pages/agents.js';
import { numbersPage } from './js/pages/numbers.js';
import { keysPage } from './js/pages/keys.js';
import { tenantsPage } from './js/pages/tenants.js';
import { auditLogPage } from './js/pages/audit-log.js';
import { usagePage } from './js/pages/usage.js';
import { appointmentsPage, appointmentDetailPage } from './js/pages/appointments.js';
import { whoami, watchRoles, forgetMe, allows, reason } from './js/roles.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logout = document.getElementById('logout');
const whoBox = document.getElementById('whoami');

const routes = [
  [/^\/calls$/, callsPage, 'Calls'],
  [/^\/calls\/([^/]+)$/, callDetailPage, 'Call'],
  [/^\/calls\/([^/]+)\/live$/, livePage, 'Live call'],
  [/^\/schedule$/, schedulePage, 'Schedule a call', 'operate'],
  [/^\/events$/, eventsPage, 'Events'],
  [/^\/events\/([^/]+)$/, eventDetailPage, 'Event'],
  [/^\/deliveries$/, deliveriesPage, 'Deliveries'],
  [/^\/deliveries\/([^/]+)$/, deliveryDetailPage, 'Delivery'],
  [/^\/endpoints$/, endpointsPage, 'Endpoints'],
  [/^\/agents$/, agentsPage, 'Agents'],
  [/^\/agents\/([^/]+)$/, agentFormPage, 'Agent'],
  [/^\/numbers$/, numbersPage, 'Numbers'],
  [/^\/keys$/, keysPage, 'API keys', 'administer'],
  [/^\/tenants$/, tenantsPage, 'Tenants', 'bootstrap'],
  [/^\/audit-log$/, auditLogPage, 'Audit log', 'administer'],
  [/^\/usage$/, usagePage, 'Usage'],
  [/^\/appointments$/, appointmentsPage, 'Appointments'],
  [/^\/appointments\/([^/]+)$/, appointmentDetailPage, 'Appointment'],
];

/** Cleanup of the current page (e.g. closing the live socket). */
let teardown = null;
let renderId = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/calls';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

async function render() {
  const id = ++renderId;
  if (teardown) {
    try {
      teardown();
    } catch {
      /* ignore */
    }
    teardown = null;
  }
  const loggedIn = Boolean(session.key);
  // The nav waits for the key's role, so links it cannot use never flash.
  nav.hidden = true;
  logout.hidden = !loggedIn;
  whoBox.hidden = !loggedIn;
  if (!loggedIn) {
    forgetMe();
    document.title = 'Log in · phone-agent';
    main.replaceChildren(loginPage({ onLogin: () => render() }));
    return;
  }
  let me;
  try {
    me = await whoami();
  } catch (err) {
    if (id !== renderId || err.status === 401) return;
    main.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, h('p', {}, h('strong', {}, 'Error: '), err.message)));
    return;
  }
  if (id !== renderId) return;
  whoBox.textContent = me.bootstrap ? 'bootstrap admin key' : `${me.role} key`;
  // Nav links to pages this key cannot use are not offered.
  for (const a of nav.querySelectorAll('a[data-needs]')) a.closest('li').hidden = !allows(me, a.dataset.needs);
  nav.hidden = false;
  watchRoles(main, me);
  const { path, params } = parseHash();
  let matched = null;
  for (const [re, page, title, needs] of routes) {
    const m = re.exec(path);
    if (m) {
      matched = { page, title, needs, args: m.slice(1).map(decodeURIComponent) };
      break;
    }
  }
  for (const a of nav.querySelectorAll('a')) {
    const target = a.getAttribute('href').slice(1);
    if (path === target || path.startsWith(`${target}/`)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!matched) {
    document.title = 'Not found · phone-agent';
    main.replaceChildren(h('h2', { id: 'page-title', tabindex: '-1' }, 'Page not found'), h('p', {}, h('a', { href: '#/calls' }, 'Back to calls')));
    return;
  }
  document.title = `${matched.title} · phone-agent`;
  if (!allows(me, matched.needs)) {
    // A page whose every action the key's role refuses says so instead of a 403 error.
    main.replaceChildren(h('div', { class: 'page' },
      h('h2', { id: 'page-title', tabindex: '-1' }, matched.title),
      h('p', { class: 'needs-note', role: 'note' }, `This page ${reason(me, matched.needs).replace(/^Needs/, 'needs')}`)));
    document.getElementById('page-title')?.focus({ preventScroll: true });
    return;
  }
  const container = h('div', { class: 'page' }, h('p', { class: 'loading' }, 'Loading…'));
  main.replaceChildren(container);
  const ctx = {
    params,
    isCurrent: () => id === renderId,
    onTeardown: (fn) => {
      teardown = fn;
    },
    navigate: (hash) => {
      location.hash = hash;
    },
  };
  try {
    const node = await matched.page(ctx, ...matched.args);
    if (id !== renderId) return;
    container.replaceChildren(node);
  } catch (err) {
    if (id !== renderId || err.status === 401) return;
    container.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, h('p', {}, h('strong', {}, 'Error: '), err.message)));
  }
  if (id === renderId && !main.contains(document.activeElement)) {
    // Move focus to the new page's heading so keyboard and screen-reader users land on it.
    document.getElementById('page-title')?.focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', render);
window.addEventListener('auth:required', () => {
  announce('Your API key was refused; please log in again.');
  render();
});
logout.addEventListener('click', () => {
  session.key = null;
  forgetMe();
  announce('Logged out.');
  render();
});

async function health() {
  const el = document.getElementById('health');
  try {
    const res = await fetch('/health');
    const body = await res.json();
    el.textContent = `Worker health: ${body.status} (version ${body.version})`;
    el.className = body.status === 'ok' ? 'ok' : 'fail';
    configBanner(body.features ?? {});
  } catch (e) {
    el.textContent = `Worker unreachable: ${e.message}`;
    el.className = 'fail';
  }
}

/** "scheduled_calls.twilio" → "scheduled calls (twilio)". */
function featureLabel(name) {
  const [kind, provider] = name.split('.');
  const label = kind.replaceAll('_', ' ');
  return provider ? `${label} (${provider})` : label;
}

/** Lists the features /health reports unusable, each with the variables to set. */
function configBanner(features) {
  const banner = document.getElementById('config-banner');
  const unusable = Object.entries(features).filter(([, f]) => !f.ok);
  banner.replaceChildren();
  banner.hidden = unusable.length === 0;
  if (!unusable.length) return;
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  summary.textContent = `${unusable.length} feature${unusable.length === 1 ? '' : 's'} not configured on this server`;
  const list = document.createElement('ul');
  for (const [name, f] of unusable) {
    const item = document.createElement('li');
    item.dataset.feature = name;
    const vars = f.missing.map((v) => {
      const code = document.createElement('code');
      code.textContent = v;
      return code;
    });
    item.append(`${featureLabel(name)}: set `, ...vars.flatMap((c, i) => (i ? [', ', c] : [c])));
    list.append(item);
  }
  details.append(summary, list);
  banner.append(details);
}

health();
render();
