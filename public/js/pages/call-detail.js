import { api } from '../api.js';
import { h, badge, fmtTime, fmtDuration, fmtMs, table, pageHeader, errorBox, showError, announce, json } from '../dom.js';
import { latencyChart } from '../chart.js';
import { callDuration, callLatency } from './calls.js';

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

export function transcriptList(turns) {
  return h('ol', { class: 'transcript' }, turns.map((t) => h('li', { class: `line ${t.role}${t.interrupted ? ' interrupted' : ''}` },
    h('span', { class: 'speaker' }, t.role === 'caller' ? 'Caller' : t.role === 'agent' ? 'Agent' : 'Note'),
    h('span', { class: 'text' }, t.text),
    t.interrupted ? h('span', { class: 'tag' }, 'interrupted (barge-in)') : null)));
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
      type: 'button', class: 'danger', onclick: async (e) => {
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

  const dl = (pairs) => h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
  const turns = transcriptTurns(call);
  const metrics = turnMetrics(call);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Call ${call.id}`, ...actions),
    errors,
    h('div', { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'facts-title' },
        h('h3', { id: 'facts-title' }, 'Details'),
        dl([
          ['Status', badge(call.status)],
          ['To', call.to], ['From', call.from], ['Provider', call.provider],
          ['Starts', `${fmtTime(call.start_at)}${call.time_zone ? ` (${call.time_zone})` : ''}`],
          ['Contact', [call.contact?.name, call.contact?.email].filter(Boolean).join(' · ') || '—'],
          ['Attempt', String(call.attempt ?? 1)],
          ['Duration', fmtDuration(callDuration(call))],
          ['Latency (p50)', fmtMs(callLatency(call))],
          ['Confirmation email', call.email_status ?? '—'],
          ['Last error', call.last_error ?? '—'],
        ])),
      h('section', { class: 'card', 'aria-labelledby': 'summary-title' },
        h('h3', { id: 'summary-title' }, 'Summary'),
        call.summary ? h('p', { class: 'summary' }, typeof call.summary === 'string' ? call.summary : call.summary.text ?? JSON.stringify(call.summary))
          : h('p', { class: 'empty' }, 'No summary yet.'))),
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
