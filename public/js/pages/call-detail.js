import { api } from '../api.js';
import { h, badge, fmtTime, fmtDuration, fmtMs, table, field, pageHeader, errorBox, showError, announce, json } from '../dom.js';
import { latencyChart } from '../chart.js';
import { callDuration, callLatency, directionLabel, zonedTime } from './calls.js';
import { browserZone, timeZoneSelect, wallTimeIn } from './schedule.js';

/** Why a number routed a call as it did (the call's `routing.reason`). */
const ROUTING_REASONS = {
  open: 'within hours',
  closed_weekly: 'weekly hours',
  closed_exception: 'holiday exception',
  no_hours: 'no hours set',
};

const LIVE = new Set(['ringing', 'in_progress', 'queued', 'dispatching']);

/**
 * The post-call analysis (`{status, values, success, success_reason, errors, raw}`) as a card, or
 * null when the agent defines none: the values when ok, the reasons when invalid or failed.
 */
export function analysisSection(analysis) {
  if (!analysis) return null;
  const value = (v) => (v === null || v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
  const rows = [['Status', badge(analysis.status)]];
  if (analysis.success !== null && analysis.success !== undefined) {
    rows.push(['Success', `${analysis.success ? 'yes' : 'no'}${analysis.success_reason ? ` · ${analysis.success_reason}` : ''}`]);
  }
  for (const [k, v] of Object.entries(analysis.values ?? {})) rows.push([k, value(v)]);
  return h('section', { class: 'card', 'aria-labelledby': 'analysis-title' },
    h('h3', { id: 'analysis-title' }, 'Analysis'),
    h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    analysis.errors?.length ? h('ul', { class: 'analysis-errors' }, analysis.errors.map((e) => h('li', {}, e))) : null);
}

/** Transcript entries `[{role, text, turn?, interrupted?, metrics?}]` from whatever shape the record has. */
export function transcriptTurns(call) {
  const t = call.transcript;
  if (!t) return [];
  if (Array.isArray(t)) return t;
  if (Array.isArray(t.turns)) return t.turns;
  if (typeof t === 'string' || typeof t.text === 'string') {
    return (typeof t === 'string' ? t : t.text).split('\n').filter(Boolean).map((line) => {
      const m = /^(Caller|Agent|User|Assistant):\s*(.*)$/i.exec(line);
      return m ? { role: /caller|user/i.test(m[1]) ? 'caller' : 'agent', text: m[2] } : { role: 'note', text: line };
    });
  }
  return [];
}

/** Per-turn metrics `[{turn, metrics}]` from `metrics.turns` or the transcript's agent lines. */
export function turnMetrics(call) {
  if (Array.isArray(call.metrics?.turns)) return call.metrics.turns.filter((t) => t.metrics);
  return transcriptTurns(call).filter((t) => t.metrics).map((t, i) => ({ turn: t.turn ?? i, metrics: t.metrics }));
}

/**
 * The part of an agent line the caller never heard (a barge-in cut it): struck through, with its
 * meaning in text for screen readers, which do not announce <del>.
 */
export function cutPart(unheard) {
  return h('span', { class: 'cut' }, ' ',
    h('span', { class: 'sr-only' }, 'Not heard by the caller (cut by a barge-in): '),
    h('del', {}, unheard));
}

export function transcriptList(turns) {
  return h('ol', { class: 'transcript' }, turns.map((t) => h('li', { class: `line ${t.role}${t.interrupted ? ' interrupted' : ''}` },
    h('span', { class: 'speaker' }, t.role === 'caller' ? 'Caller' : t.role === 'agent' ? 'Agent' : 'Note'),
    h('span', { class: 'text' }, t.text, t.unheard ? cutPart(t.unheard) : null),
    t.interrupted ? h('span', { class: 'tag' }, t.unheard ? 'cut by barge-in: struck text not heard' : 'interrupted (barge-in)') : null)));
}

/** Usage and cost, when the record carries them (`usage`: {name: amount}, `cost`: number or {amount, currency}). */
function usageFacts(call) {
  const pairs = [];
  const cost = call.cost;
  if (typeof cost === 'number') pairs.push(['Cost', String(cost)]);
  else if (cost && typeof cost === 'object') {
    const amount = cost.amount ?? cost.total;
    if (amount != null) pairs.push(['Cost', `${amount}${cost.currency ? ` ${cost.currency}` : ''}`]);
  }
  if (call.usage && typeof call.usage === 'object') {
    for (const [k, v] of Object.entries(call.usage)) {
      if (v != null && typeof v !== 'object') pairs.push([k.replaceAll('_', ' '), String(v)]);
    }
  }
  return pairs;
}

/** The reschedule form of a scheduled call: date and time in the zone picked (the call's own by default). */
function rescheduleForm(ctx, call) {
  const errors = errorBox();
  const zone = call.time_zone || browserZone();
  const start = call.start_at ? new Date(call.start_at) : new Date(Date.now() + 3_600_000);
  const when = h('input', { name: 'local_time', type: 'datetime-local', required: true, step: 60, value: wallTimeIn(start, zone) });
  const tz = timeZoneSelect(zone);
  const submit = h('button', { type: 'submit' }, 'Reschedule');
  const form = h('form', {
    class: 'card reschedule', 'aria-labelledby': 'reschedule-title', 'data-needs': 'operate', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      showError(errors, null, form);
      if (!form.reportValidity()) return;
      submit.disabled = true;
      try {
        const moved = await api('PATCH', `/calls/${encodeURIComponent(call.id)}`, { local_time: when.value, time_zone: tz.value });
        announce(`Call ${call.id} rescheduled to ${when.value.replace('T', ' ')} (${moved.time_zone ?? tz.value}).`);
        ctx.navigate(`#/calls/${encodeURIComponent(call.id)}?r=${Date.now()}`);
      } catch (err) {
        submit.disabled = false;
        showError(errors, err, form);
      }
    },
  },
  h('h3', { id: 'reschedule-title' }, 'Reschedule'),
  h('div', { class: 'row' },
    field('New date and time', when, 'In the time zone you pick'),
    field('Time zone', tz, `The call's own zone by default${call.time_zone ? '' : ` (none set; yours: ${zone})`}`)),
  errors,
  h('div', { class: 'buttons' }, submit));
  return form;
}

export async function callDetailPage(ctx, id) {
  const call = await api('GET', `/calls/${encodeURIComponent(id)}`);
  if (!call.transcript && ['completed', 'failed', 'no_answer', 'busy'].includes(call.status)) {
    // The transcript may live on its own resource; absent is fine.
    call.transcript = await api('GET', `/calls/${encodeURIComponent(id)}/transcript`).catch(() => null);
  }
  const errors = errorBox();
  const actions = [];
  if (LIVE.has(call.status)) actions.push(h('a', { class: 'button', href: `#/calls/${encodeURIComponent(id)}/live` }, 'Watch live'));
  if (call.status === 'scheduled') {
    actions.push(h('button', {
      type: 'button', class: 'danger', 'data-needs': 'operate', onclick: async (e) => {
        if (!confirm(`Cancel call ${id}?`)) return;
        e.target.disabled = true;
        try {
          await api('DELETE', `/calls/${encodeURIComponent(id)}`);
          announce(`Call ${id} canceled.`);
          ctx.navigate(`#/calls/${encodeURIComponent(id)}?r=${Date.now()}`);
        } catch (err) {
          e.target.disabled = false;
          showError(errors, err);
        }
      },
    }, 'Cancel call'));
  }
  actions.push(h('a', { class: 'button secondary', href: `#/events?call_id=${encodeURIComponent(id)}` }, 'Events'));

  // How the number's business hours routed an incoming call (absent for outbound calls).
  const routingLabel = (r) => r && `${r.decision} (${ROUTING_REASONS[r.reason] ?? r.reason})`;
  const dl = (pairs) => h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
  const turns = transcriptTurns(call);
  const metrics = turnMetrics(call);
  const usage = usageFacts(call);
  const agent = call.agent_id
    ? h('a', { href: `#/agents/${encodeURIComponent(call.agent_id)}` }, call.agent_name ?? call.agent_id)
    : '—';
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Call ${call.id}`, ...actions),
    errors,
    h('div', { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'facts-title' },
        h('h3', { id: 'facts-title' }, 'Details'),
        dl([
          ['Status', badge(call.status)],
          ['Direction', directionLabel(call.direction)],
          ['From', call.from], ['To', call.to],
          ['Agent', agent],
          ['Routing', routingLabel(call.routing)],
          ['Provider', call.provider],
          call.start_at ? ['Starts', zonedTime(call.start_at, call.time_zone)] : ['Started', fmtTime(call.answered_at ?? call.created_at)],
          ['Contact', [call.contact?.name, call.contact?.email].filter(Boolean).join(' · ') || '—'],
          ['Attempt', String(call.attempt ?? 1)],
          ['Duration', fmtDuration(callDuration(call))],
          ['Latency (p50)', fmtMs(callLatency(call))],
          ['Confirmation email', call.email_status ?? '—'],
          ['Last error', call.last_error ?? '—'],
          ...usage,
        ])),
      h('section', { class: 'card', 'aria-labelledby': 'summary-title' },
        h('h3', { id: 'summary-title' }, 'Summary'),
        call.summary ? h('p', { class: 'summary' }, typeof call.summary === 'string' ? call.summary : call.summary.text ?? JSON.stringify(call.summary))
          : h('p', { class: 'empty' }, 'No summary yet.'))),
    call.status === 'scheduled' ? rescheduleForm(ctx, call) : null,
    analysisSection(call.analysis),
    h('section', { class: 'card', 'aria-labelledby': 'transcript-title' },
      h('h3', { id: 'transcript-title' }, 'Transcript'),
      turns.length ? transcriptList(turns) : h('p', { class: 'empty' }, 'No transcript yet.')),
    h('section', { class: 'card', 'aria-labelledby': 'latency-title' },
      h('h3', { id: 'latency-title' }, 'Per-turn latency'),
      latencyChart(metrics)),
    h('section', { class: 'card', 'aria-labelledby': 'history-title' },
      h('h3', { id: 'history-title' }, 'Status history'),
      table({
        columns: [
          { label: 'At', cell: (e) => fmtTime(e.at) },
          { label: 'Kind', cell: (e) => e.kind },
          { label: 'Change', cell: (e) => (e.to ? [e.from ? badge(e.from) : '', e.from ? ' → ' : '', badge(e.to)] : '—') },
          { label: 'Source', cell: (e) => e.source },
          { label: 'Detail', cell: (e) => (e.detail && Object.keys(e.detail).length ? h('code', { class: 'detail' }, JSON.stringify(e.detail)) : '—') },
        ],
        rows: call.history ?? [],
        empty: 'No history.',
      })),
    call.emails?.length ? h('section', { class: 'card', 'aria-labelledby': 'emails-title' },
      h('h3', { id: 'emails-title' }, 'Emails'),
      table({
        columns: [
          { label: 'Kind', cell: (e) => e.kind }, { label: 'Status', cell: (e) => badge(e.status) },
          { label: 'Attempts', cell: (e) => String(e.attempts) }, { label: 'Last error', cell: (e) => e.last_error ?? '—' },
          { label: 'Created', cell: (e) => fmtTime(e.created_at) },
        ],
        rows: call.emails,
      })) : null,
    h('details', { class: 'raw' }, h('summary', {}, 'Raw record'), json(call)));
}
