// Per-turn latency chart: grouped bars in inline SVG (no library), with a data table beside it
// for screen readers and exact values. The SVG is drawn at the pixel width it gets (redrawn when
// that changes), so its text stays at its CSS size on a phone instead of shrinking with a
// scaled viewBox; turn labels are thinned out so they never overlap.
import { h, svg, fmtMs, table } from './dom.js';

export const SERIES = [
  { key: 'llm_first_token_ms', label: 'LLM first token', cls: 's1' },
  { key: 'tts_first_byte_ms', label: 'TTS first byte', cls: 's2' },
  { key: 'first_audio_ms', label: 'First audio sent', cls: 's3' },
  { key: 'first_mark_ms', label: 'First audio played', cls: 's4' },
];

/** Widest drawing (px) and the narrowest a turn's group of bars may get before the chart scrolls. */
const MAX_W = 720;
const MIN_BAR = 4;
/** Approximate advance of one label character at the chart's 11-12 px font. */
const CHAR_W = 7;

let charts = 0;

/** turns: [{turn, metrics: {...}}] */
export function latencyChart(turns) {
  const rows = turns.filter((t) => t.metrics && SERIES.some((s) => t.metrics[s.key] != null));
  if (!rows.length) return h('p', { class: 'empty' }, 'No latency measured for this call.');
  const series = SERIES.filter((s) => rows.some((t) => t.metrics[s.key] != null));
  const max = Math.max(...rows.flatMap((t) => series.map((s) => t.metrics[s.key] ?? 0)), 1);
  const titleId = `latency-chart-title-${++charts}`;
  const title = `Per-turn latency for ${rows.length} turn${rows.length === 1 ? '' : 's'}, up to ${fmtMs(max)}`;

  const scroller = h('div', { class: 'chart-scroll' });
  let drawnAt = 0;
  const draw = (available) => {
    const width = Math.max(280, Math.min(MAX_W, Math.floor(available)));
    if (width === drawnAt) return;
    drawnAt = width;
    const chart = drawBars({ rows, series, max, width, titleId, title });
    const scrolls = Number(chart.getAttribute('width')) > width;
    // Only a chart too wide for its box scrolls, and then it is reachable by keyboard.
    if (scrolls) {
      scroller.setAttribute('tabindex', '0');
      scroller.setAttribute('role', 'region');
      scroller.setAttribute('aria-label', 'Latency chart (scrolls sideways)');
    } else {
      for (const a of ['tabindex', 'role', 'aria-label']) scroller.removeAttribute(a);
    }
    scroller.replaceChildren(chart);
  };
  draw(MAX_W);
  const observer = new ResizeObserver((entries) => {
    if (!scroller.isConnected) return observer.disconnect();
    const w = entries[0]?.contentRect.width;
    if (w) draw(w);
  });
  observer.observe(scroller);

  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' }, series.map((s) => h('li', {}, h('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), s.label)));
  const data = h('details', {}, h('summary', {}, 'Latency figures as a table'),
    table({
      caption: title,
      columns: [{ label: 'Turn', cell: (t) => String(t.turn) }, ...series.map((s) => ({ label: s.label, cell: (t) => fmtMs(t.metrics[s.key]) }))],
      rows,
    }));
  return h('figure', { class: 'chart-figure' }, scroller, legend, data);
}

/** The SVG for a box `width` px wide (wider when the turns cannot fit, for the box to scroll). */
function drawBars({ rows, series, max, width, titleId, title }) {
  const niceMax = niceCeil(max);
  const narrow = width < 480;
  const ticks = (narrow ? [0, 0.5, 1] : [0, 0.25, 0.5, 0.75, 1]).map((f) => f * niceMax);
  const left = 8 + CHAR_W * Math.max(...ticks.map((t) => fmtMs(t).length));
  const right = 8, top = 12, bottom = 28;
  const H = narrow ? 200 : 240;
  const minGroup = series.length * MIN_BAR + 6;
  const W = Math.max(width, left + right + rows.length * minGroup);
  const plotW = W - left - right, plotH = H - top - bottom;
  const groupW = plotW / rows.length;
  const barW = Math.max(MIN_BAR - 1, Math.min(28, (groupW * 0.8) / series.length));
  const y = (v) => top + plotH - (v / niceMax) * plotH;
  // Label every k-th turn so neighbouring labels keep a gap; the last turn is always labelled.
  const labelW = CHAR_W * (String(rows.at(-1).turn).length + 1) + 8;
  const every = Math.max(1, Math.ceil(labelW / groupW));
  const last = rows.length - 1;
  const labelled = (i) => i === last || (i % every === 0 && last - i >= every);

  return svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart', role: 'img', 'aria-labelledby': titleId },
    svg('title', { id: titleId }, title),
    ticks.map((t) => svg('g', { class: 'tick' },
      svg('line', { x1: left, x2: W - right, y1: y(t), y2: y(t) }),
      svg('text', { x: left - 6, y: y(t) + 4, 'text-anchor': 'end' }, fmtMs(t)))),
    rows.map((t, i) => {
      const gx = left + i * groupW + (groupW - barW * series.length) / 2;
      return svg('g', { class: 'group' },
        series.map((s, j) => {
          const v = t.metrics[s.key];
          if (v == null) return null;
          return svg('rect', { class: `bar ${s.cls}`, x: gx + j * barW, y: y(v), width: Math.max(1, barW - 1), height: Math.max(0.5, top + plotH - y(v)) },
            svg('title', {}, `Turn ${t.turn}: ${s.label} ${fmtMs(v)}`));
        }),
        labelled(i)
          ? svg('text', { class: 'xlabel', x: left + i * groupW + groupW / 2, y: H - bottom + 16, 'text-anchor': 'middle' }, `T${t.turn}`)
          : null);
    }),
    svg('line', { class: 'axis', x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

let usageCharts = 0;

/**
 * Usage per period as one bar series (the usage page): rows [{period, ...}], `metric` {key,
 * label, value, fmt}. Drawn at the pixel width its box has (redrawn when that changes), like the
 * latency chart, so its text stays legible on a phone; the exact figures are in the page's table.
 */
export function usageChart(rows, metric) {
  const points = rows.map((r) => ({ period: r.period, v: Number(metric.value(r)) || 0 }));
  if (!points.length) return h('p', { class: 'empty' }, 'No usage in this range.');
  const max = Math.max(...points.map((p) => p.v), 0);
  const titleId = `usage-chart-title-${++usageCharts}`;
  const title = `${metric.label} per period, ${points.length} period${points.length === 1 ? '' : 's'}, up to ${metric.fmt(max)}`;
  const box = h('div', { class: 'chart-scroll' });
  let drawnAt = 0;
  const draw = (available) => {
    const width = Math.max(260, Math.min(MAX_W, Math.floor(available)));
    if (width === drawnAt) return;
    drawnAt = width;
    box.replaceChildren(drawUsage({ points, max, metric, width, titleId, title }));
  };
  draw(MAX_W);
  const observer = new ResizeObserver((entries) => {
    if (!box.isConnected) return observer.disconnect();
    const w = entries[0]?.contentRect.width;
    if (w) draw(w);
  });
  observer.observe(box);
  return h('figure', { class: 'chart-figure' }, box, h('figcaption', { class: 'muted' }, title));
}

function drawUsage({ points, max, metric, width: W, titleId, title }) {
  const niceMax = max > 0 ? niceCeil(max) : 1;
  const H = W < 480 ? 180 : 240, top = 12, bottom = 28, right = 8;
  const ticks = [0, 0.5, 1].map((f) => f * niceMax);
  const left = 8 + CHAR_W * Math.max(...ticks.map((t) => metric.fmt(t).length));
  const plotW = W - left - right, plotH = H - top - bottom;
  const groupW = plotW / points.length;
  const barW = Math.max(1, Math.min(40, groupW * 0.7));
  const y = (v) => top + plotH - (v / niceMax) * plotH;
  const label = (p) => (points.length > 1 ? p.period.slice(5) || p.period : p.period);
  const every = Math.max(1, Math.ceil((CHAR_W * (label(points[0]).length + 1)) / groupW));
  const last = points.length - 1;
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart', role: 'img', 'aria-labelledby': titleId },
    svg('title', { id: titleId }, title),
    ticks.map((t) => svg('g', { class: 'tick' },
      svg('line', { x1: left, x2: W - right, y1: y(t), y2: y(t) }),
      svg('text', { x: left - 6, y: y(t) + 4, 'text-anchor': 'end' }, metric.fmt(t)))),
    points.map((p, i) => svg('g', { class: 'group' },
      svg('rect', { class: 'bar s1', x: left + i * groupW + (groupW - barW) / 2, y: y(p.v), width: barW, height: Math.max(0.5, top + plotH - y(p.v)) },
        svg('title', {}, `${p.period}: ${metric.label} ${metric.fmt(p.v)}`)),
      i === last || (i % every === 0 && last - i >= every)
        ? svg('text', { class: 'xlabel', x: left + i * groupW + groupW / 2, y: H - bottom + 16, 'text-anchor': 'middle' }, label(p))
        : null)),
    svg('line', { class: 'axis', x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
}
