// Usage and cost (any role): GET /api/v1/usage per day or month over a range, a bar chart of
// one measure and the table of every measure per period, the totals and the tenant's quotas.
import { api, qs } from '../api.js';
import { h, field, pageHeader, table } from '../dom.js';
import { usageChart } from '../chart.js';

const num = (v) => (v == null ? '—' : Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 }));
const METRICS = [
  { key: 'carrier_minutes', label: 'Carrier minutes', value: (r) => r.carrier_minutes, fmt: num },
  { key: 'stt_seconds', label: 'STT seconds', value: (r) => r.stt_seconds, fmt: num },
  { key: 'llm_tokens', label: 'LLM tokens', value: (r) => r.llm_prompt_tokens + r.llm_completion_tokens, fmt: num },
  { key: 'tts_characters', label: 'TTS characters', value: (r) => r.tts_characters, fmt: num },
  { key: 'cost', label: 'Cost', value: (r) => (r.cost ? r.cost.total_micros / 1e6 : 0), fmt: (v) => Number(v).toFixed(2) },
];

export async function usagePage(ctx) {
  const want = Object.fromEntries(['from', 'to', 'granularity', 'show'].map((k) => [k, ctx.params.get(k) ?? '']));
  const report = await api('GET', `/usage${qs({ from: want.from, to: want.to, granularity: want.granularity })}`);
  const priced = report.currency != null;
  const metrics = METRICS.filter((m) => m.key !== 'cost' || priced);
  const metric = metrics.find((m) => m.key === want.show) ?? metrics[0];

  const from = h('input', { name: 'from', type: 'date', value: report.from });
  const to = h('input', { name: 'to', type: 'date', value: report.to });
  const granularity = h('select', { name: 'granularity' },
    ['day', 'month'].map((g) => h('option', { value: g, selected: report.granularity === g }, g === 'day' ? 'Per day' : 'Per month')));
  const show = h('select', { name: 'show' }, metrics.map((m) => h('option', { value: m.key, selected: m === metric }, m.label)));
  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Usage range',
    onsubmit: (e) => {
      e.preventDefault();
      ctx.navigate(`#/usage${qs({ from: from.value, to: to.value, granularity: granularity.value, show: show.value })}`);
    },
  }, field('From', from), field('To', to), field('Group', granularity), field('Chart', show),
  h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Show usage')));

  const columns = [
    { label: 'Period', cell: (r) => r.period ?? 'Total' },
    { label: 'Calls', cell: (r) => num(r.calls) },
    { label: 'Carrier minutes', cell: (r) => num(r.carrier_minutes) },
    { label: 'STT seconds', cell: (r) => num(r.stt_seconds) },
    { label: 'LLM prompt tokens', cell: (r) => num(r.llm_prompt_tokens) },
    { label: 'LLM completion tokens', cell: (r) => num(r.llm_completion_tokens) },
    { label: 'TTS characters', cell: (r) => num(r.tts_characters) },
    { label: 'Tool calls', cell: (r) => num(r.tool_calls) },
    priced ? { label: `Cost (${report.currency})`, cell: (r) => (r.cost ? r.cost.total : '—') } : null,
  ].filter(Boolean);
  const q = report.quotas;
  const limit = (v, unit) => (v == null ? 'unlimited' : `${num(v)} ${unit}`);
  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader('Usage'),
    form,
    h('section', { 'aria-labelledby': 'usage-chart-h' }, h('h3', { id: 'usage-chart-h' }, metric.label), usageChart(report.data, metric)),
    h('section', { id: 'usage-table', 'aria-labelledby': 'usage-table-h' }, h('h3', { id: 'usage-table-h' }, 'Figures'),
      table({ caption: `Usage ${report.from} to ${report.to}`, columns, rows: report.data.length ? [...report.data, report.total] : [], empty: 'No usage in this range.' })),
    h('section', { id: 'usage-quotas', 'aria-labelledby': 'usage-quotas-h' }, h('h3', { id: 'usage-quotas-h' }, 'Quotas'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Concurrent calls'), h('dd', {}, `${num(q.live_calls)} live of ${limit(q.max_concurrent_calls, 'calls')}`),
        h('dt', {}, 'Minutes this month'), h('dd', {}, `${num(q.month_minutes_used)} used of ${limit(q.monthly_minutes, 'minutes')}`))));
}
