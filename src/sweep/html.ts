// The comparison as one self-contained page, with the run report's machinery (src/analyze/html.ts:
// uPlot inlined, data embedded as JSON, nothing fetched): the table, every configuration's timeline
// overlaid (io_tlb_used of its first run that has one), and one bar chart per figure (median, with
// the repeats' min and max marked).
import { CSS as REPORT_CSS, esc, htmlPage, tableHtml } from '../analyze/html.js';
import { FIGURES } from './figures.js';
import { type CompareDocument, formatValue, spreadText } from './compare.js';
import { type RunRecord, poolLabel } from './run.js';

const CSS = `
table.compare td.num { white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .bar { width: 380px; } .bar h3 { font-size: 1em; margin: .6em 0 .2em; }
`;

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The chart script: the overlaid timelines and one bar chart per figure; exposes what it drew for tests. */
const CHART_JS = `
(function () {
  var d = JSON.parse(document.getElementById('compare-data').textContent);
  var palette = ${JSON.stringify(PALETTE)};
  var drawn = { timelines: 0, timelinePoints: {}, bars: {} };
  // Timelines: one x axis (the union of sample times), one io_tlb_used series per configuration.
  var xs = [];
  d.timelines.forEach(function (t) { t.t_s.forEach(function (x) { xs.push(x); }); });
  xs = xs.filter(function (x, i, a) { return a.indexOf(x) === i; }).sort(function (a, b) { return a - b; });
  var data = [xs];
  var series = [{ label: 't (s)' }];
  d.timelines.forEach(function (t, i) {
    var at = {};
    t.t_s.forEach(function (x, k) { at[x] = t.io_tlb_used[k]; });
    data.push(xs.map(function (x) { return at[x] === undefined ? null : at[x]; }));
    series.push({ label: t.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true });
    drawn.timelinePoints[t.label] = t.io_tlb_used.filter(function (v) { return v !== null; }).length;
  });
  var tl = document.getElementById('timelines');
  if (d.timelines.length > 0) {
    new uPlot({ width: Math.max(600, tl.clientWidth || 1000), height: 380, scales: { x: { time: false } },
      axes: [{ label: 'seconds since the run started' }, { label: 'io_tlb_used (slots)', size: 70 }], series: series }, data, tl);
    drawn.timelines = d.timelines.length;
  }
  // Axis labels in the figure's unit, short: 8M, 1.5ms, 12k.
  function axisText(unit, v) {
    if (unit === 'bytes' || unit === 'bytes/s') return (v / 1048576).toFixed(v % 1048576 === 0 ? 0 : 1) + (unit === 'bytes' ? 'M' : 'M/s');
    if (unit === 'us') return v >= 1000 ? (v / 1000) + 'ms' : v + 'us';
    return v >= 10000 ? (v / 1000) + 'k' : String(v);
  }
  // Bar charts: x is the configuration's index; median as bars, min and max as points.
  var bars = uPlot.paths.bars({ size: [0.6, 60] });
  d.figures.forEach(function (f) {
    var el = document.getElementById('bar-' + f.name);
    var idx = d.labels.map(function (_, i) { return i; });
    var med = d.values[f.name].map(function (v) { return v === null ? null : v.median; });
    var min = d.values[f.name].map(function (v) { return v === null ? null : v.min; });
    var max = d.values[f.name].map(function (v) { return v === null ? null : v.max; });
    var pts = function (c) { return { stroke: c, width: 0, paths: function () { return null; }, points: { show: true, size: 6, stroke: c, fill: c } }; };
    new uPlot({ width: 380, height: 220, legend: { show: false },
      scales: { x: { time: false, range: [-0.5, d.labels.length - 0.5] }, y: { range: function (u, lo, hi) { return [0, Math.max(1, hi) * 1.1]; } } },
      axes: [{ values: function (u, vals) { return vals.map(function (v) { return Number.isInteger(v) && d.labels[v] !== undefined ? String(v + 1) : ''; }); } },
             { size: 70, values: function (u, vals) { return vals.map(function (v) { return axisText(f.unit, v); }); } }],
      series: [{}, { label: 'median', fill: 'rgba(31,119,180,0.5)', stroke: '#1f77b4', paths: bars, points: { show: false } },
               Object.assign({ label: 'min' }, pts('#555')), Object.assign({ label: 'max' }, pts('#d62728'))] },
      [idx, med, min, max], el);
    drawn.bars[f.name] = med.filter(function (v) { return v !== null; }).length;
  });
  window.cocoCompare = drawn;
  document.body.setAttribute('data-chart-ready', '1');
})();
`;

/** The page: `records` gives the timelines (each configuration's first run that has one). */
export function renderCompareHtml(doc: CompareDocument, records: readonly RunRecord[]): string {
  const labels = doc.rows.map((r) => `${r.config.policy} ${poolLabel(r.config.pool)}`);
  const timelines = doc.rows.flatMap((row, i) => {
    const rec = records.find((r) => r.key === row.key && r.timeline !== undefined);
    return rec === undefined ? [] : [{ label: labels[i]!, t_s: rec.timeline!.t_s, io_tlb_used: rec.timeline!.io_tlb_used }];
  });
  const values = Object.fromEntries(FIGURES.map((f) => [f.name, doc.rows.map((r) => r.figures[f.name] ?? null)]));
  const data = { labels, figures: doc.figures, values, timelines };
  const head = ['#', 'configuration', '>runs', ...FIGURES.map((f) => `>${f.label}`), '>stalls'];
  const body = doc.rows.map((r, i) => [
    String(i + 1), labels[i]!, `${r.ok}/${r.repeats}`,
    ...FIGURES.map((f) => {
      const s = r.figures[f.name];
      if (s === null || s === undefined) return '-';
      return `${formatValue(f.unit, s.median)}${spreadText(f.unit, s)}`;
    }),
    String(r.stalls),
  ]);
  const failed = doc.rows.flatMap((r, i) => r.reasons.map((why) => [labels[i]!, why]));
  const title = `coco-swiotlb comparison: ${doc.rows[0]?.config.job ?? 'no runs'}`;
  const page = `<h1>${esc(title)}</h1>
<p class="sub">Sweep ${esc(doc.sweep)}; ${esc(doc.runs.length)} runs of ${esc(doc.rows.length)} configurations. Each cell: the median over the runs that ended ok, ±(max-min)/median when the repeats differ.</p>
${tableHtml(head, body, 'compare')}
${failed.length > 0 ? `<h2>Runs that did not end ok</h2>${tableHtml(['configuration', 'outcome'], failed)}` : ''}
${doc.missing.length > 0 ? `<h2>Missing from the merge: ${esc(doc.missing.length)}</h2><ul>${doc.missing.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : ''}
<h2>io_tlb_used over time</h2>
<div id="timelines"></div>
<p class="note">One line per configuration: io_tlb_used (the largest sample per time bucket) of its first run.</p>
<h2>Figures</h2>
<p class="note">Bars: the median of each configuration (numbered as in the table); grey point: the smallest repeat, red: the largest.</p>
<div class="charts">
${FIGURES.map((f) => `<div class="bar"><h3>${esc(f.label)}: ${esc(f.help)}</h3><div id="bar-${esc(f.name)}"></div></div>`).join('\n')}
</div>
<h2>Policies</h2>
${tableHtml(['policy', 'status', 'source'], doc.policies.map((p) => [p.name, p.status, p.source]))}`;
  return htmlPage({ title, css: REPORT_CSS + CSS, body: page, dataId: 'compare-data', data, script: CHART_JS });
}
