// Per-turn latency chart: grouped bars in inline SVG (no library), with a data table beside it
// for screen readers and exact values.
import { h, svg, fmtMs, table } from './dom.js';

export const SERIES = [
  { key: 'llm_first_token_ms', label: 'LLM first token', cls: 's1' },
  { key: 'tts_first_byte_ms', label: 'TTS first byte', cls: 's2' },
  { key: 'first_audio_ms', label: 'First audio sent', cls: 's3' },
  { key: 'first_mark_ms', label: 'First audio played', cls: 's4' },
];

/** turns: [{turn, metrics: {...}}] */
export function latencyChart(turns) {
  const rows = turns.filter((t) => t.metrics && SERIES.some((s) => t.metrics[s.key] != null));
  if (!rows.length) return h('p', { class: 'empty' }, 'No latency measured for this call.');
  const series = SERIES.filter((s) => rows.some((t) => t.metrics[s.key] != null));
  const max = Math.max(...rows.flatMap((t) => series.map((s) => t.metrics[s.key] ?? 0)), 1);
  const niceMax = niceCeil(max);
  const W = 640, H = 240, left = 56, right = 8, top = 12, bottom = 36;
  const plotW = W - left - right, plotH = H - top - bottom;
  const groupW = plotW / rows.length;
  const barW = Math.max(2, Math.min(28, (groupW * 0.8) / series.length));
  const y = (v) => top + plotH - (v / niceMax) * plotH;

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * niceMax);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': 'latency-chart-title' },
    svg('title', { id: 'latency-chart-title' }, `Per-turn latency for ${rows.length} turn${rows.length === 1 ? '' : 's'}, up to ${fmtMs(max)}`),
    ticks.map((t) => svg('g', { class: 'tick' },
      svg('line', { x1: left, x2: W - right, y1: y(t), y2: y(t) }),
      svg('text', { x: left - 6, y: y(t) + 4, 'text-anchor': 'end' }, fmtMs(t)))),
    rows.map((t, i) => {
      const gx = left + i * groupW + (groupW - barW * series.length) / 2;
      return svg('g', { class: 'group' },
        series.map((s, j) => {
          const v = t.metrics[s.key];
          if (v == null) return null;
          return svg('rect', { class: `bar ${s.cls}`, x: gx + j * barW, y: y(v), width: barW - 1, height: Math.max(0.5, top + plotH - y(v)) },
            svg('title', {}, `Turn ${t.turn}: ${s.label} ${fmtMs(v)}`));
        }),
        svg('text', { class: 'xlabel', x: left + i * groupW + groupW / 2, y: H - bottom + 16, 'text-anchor': 'middle' }, `T${t.turn}`));
    }),
    svg('line', { class: 'axis', x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
  const legend = h('ul', { class: 'legend' }, series.map((s) => h('li', {}, h('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), s.label)));
  const data = h('details', {}, h('summary', {}, 'Latency figures as a table'),
    table({
      columns: [{ label: 'Turn', cell: (t) => String(t.turn) }, ...series.map((s) => ({ label: s.label, cell: (t) => fmtMs(t.metrics[s.key]) }))],
      rows,
    }));
  return h('figure', { class: 'chart-figure' }, chart, legend, data);
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
