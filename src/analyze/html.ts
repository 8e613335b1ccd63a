// The browser report: one self-contained HTML file (uPlot and its CSS inlined, the data embedded as
// JSON), so it opens from disk with no network. Its size is bounded by the chart's point count and
// the analyzer's table caps, not by the log's length.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { formatBytes } from '../util/units.js';
import type { Analysis } from './analyzer.js';
import { JOB_HEADERS, exactCountText, exactCountWhen, fmtAt, fmtMs, fmtUs, jobRows, jobsTabular, keyValues, printedText, timelinePairs, vmReportText } from './format.js';
import type { ChartData } from './series.js';

const require = createRequire(import.meta.url);

/** uPlot's browser build and stylesheet, read from node_modules when a report is written. */
export function uplotAssets(): { js: string; css: string } {
  return {
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Text that is safe inside a <script> element. */
export function scriptSafe(s: string): string {
  return s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

export function tableHtml(headers: string[], rows: Array<Array<string | number>>, cls = ''): string {
  const right = headers.map((h) => h.startsWith('>'));
  const th = headers.map((h, i) => `<th${right[i] ? ' class="num"' : ''}>${esc(right[i] ? h.slice(1) : h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c, i) => `<td${right[i] ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

function kvTable(pairs: Array<[string, string]>): string {
  return `<table class="kv"><tbody>${pairs.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n')}</tbody></table>`;
}

/** Rows per table in the report. */
const HTML_ROWS = 200;

function sections(a: Analysis): string {
  const out: string[] = [];
  const i = a.input;
  out.push('<h2>Run configuration</h2>');
  out.push(a.config === null ? '<p>No run_config record.</p>' : kvTable(keyValues(a.config)));

  const t = a.timeline;
  out.push('<h2>Timeline</h2>');
  if (t.samples === 0) {
    out.push('<p>No sample records.</p>');
  } else {
    out.push(kvTable([['samples', `${t.samples}${t.sample_interval_ms !== null ? `, every ${fmtMs(t.sample_interval_ms)}` : ''}`], ...timelinePairs(a)]));
  }

  const m = a.map_failures;
  out.push(`<h2>Map failures: ${esc(exactCountText(m))}</h2>`);
  const mWhen = exactCountWhen(m);
  if (mWhen !== undefined) out.push(`<p>${esc(mWhen)}.</p>`);
  if (m.printed > 0) {
    out.push(`<p>${esc(printedText(m, 'map_failure'))}.</p>`);
    out.push(tableHtml(['device', '>size', '>records', '>first', '>last', 'direction'],
      m.groups.slice(0, HTML_ROWS).map((g) => [g.device, g.size, g.count, fmtAt(g.first), fmtAt(g.last), Object.entries(g.dirs).map(([k, n]) => `${k} ${n}`).join(', ')]), 'failures'));
  }

  const th = a.throttle;
  out.push(`<h2>Throttle waits: ${th.waits}</h2>`);
  if (th.waits > 0) {
    const w = th.wait_us;
    out.push(tableHtml(['>count', '>total', '>mean', '>p50', '>p90', '>p99', '>p99.9', '>max'],
      [[w.count, fmtUs(th.wait_us_total), fmtUs(w.mean), fmtUs(w.p50), fmtUs(w.p90), fmtUs(w.p99), fmtUs(w.p999), fmtUs(w.max)]], 'waits'));
    if (th.longest) out.push(`<p>Longest: ${esc(fmtUs(th.longest.wait_us))}, ${esc(th.longest.device)} on vCPU ${esc(th.longest.vcpu)}, ${esc(th.longest.size)} bytes, admitted at ${esc(fmtAt(th.longest.at))}.</p>`);
    out.push(tableHtml(['device', '>waits', '>total', '>longest'],
      Object.entries(th.by_device).sort((x, y) => y[1].wait_us_total - x[1].wait_us_total).slice(0, HTML_ROWS).map(([dv, v]) => [dv, v.waits, fmtUs(v.wait_us_total), fmtUs(v.wait_us_max)])));
  }

  for (const [title, g, what, kind] of [['I/O errors', a.io_errors, 'io_error', 'op'], ['Packets dropped', a.packet_drops, 'packet_dropped', 'dir']] as const) {
    if (g.total === 0 && g.printed === 0) continue;
    out.push(`<h2>${title}: ${esc(exactCountText(g))}</h2>`);
    const when = exactCountWhen(g);
    if (when !== undefined) out.push(`<p>${esc(when)}.</p>`);
    if (g.printed === 0) continue;
    out.push(`<p>${esc(printedText(g, what))}.</p>`);
    out.push(tableHtml(['device', kind, 'reason', '>records', '>bytes', '>first', '>last'],
      g.groups.slice(0, HTML_ROWS).map((e) => [e.device, e.kind, e.reason, e.count, formatBytes(e.bytes), fmtAt(e.first), fmtAt(e.last)])));
  }

  const st = a.stalls;
  out.push(`<h2>Stalls: ${st.total}</h2>`);
  if (st.total > 0) {
    out.push(tableHtml(['>when', 'holder', '>waiters', '>parked', 'kind'],
      st.list.map((s) => [fmtAt(s.at), `${s.holder.device} on vCPU ${s.holder.vcpu} (${s.holder.size} bytes)`, s.waiters.length, fmtMs(s.parked_ms), s.kind ?? ''])));
  }
  if (a.tunables.total > 0) {
    out.push(`<h2>Tunables changed: ${a.tunables.total}</h2>`);
    out.push(tableHtml(['>when', 'name', 'old', 'new'], a.tunables.list.map((c) => [fmtAt(c.at), c.name, String(c.old), String(c.new)])));
  }
  if (a.worker_errors.total > 0) {
    out.push(`<h2>Thread errors: ${a.worker_errors.total}</h2>`);
    out.push(tableHtml(['>when', 'level', 'thread', 'error'], a.worker_errors.list.map((e) => [fmtAt(e.at), e.level, e.thread, `${e.error.name}: ${e.error.message}`])));
  }
  const other: Array<[string, string]> = [];
  if (a.double_unmaps.total > 0) other.push(['double unmaps', String(a.double_unmaps.total)]);
  if (a.bounce_overflows.total > 0) other.push(['bounce overflows', String(a.bounce_overflows.total)]);
  for (const [text, n] of Object.entries(a.warnings.by_text)) other.push([`warning (x${n})`, text]);
  if (a.log_overflows.records_dropped > 0) other.push(['log records dropped', String(a.log_overflows.records_dropped)]);
  if (other.length > 0) out.push('<h2>Other events</h2>', kvTable(other));

  out.push('<h2>Final report</h2>');
  const vmText = a.summary === null ? undefined : vmReportText(a.summary);
  if (a.summary === null) {
    out.push('<p>No run_summary record: the run did not finish, or the log is incomplete.</p>');
  } else if (vmText !== undefined) {
    out.push(`<pre class="report">${esc(vmText)}</pre>`);
  } else {
    const { jobs, swiotlb, ...rest } = a.summary;
    const tabular = jobsTabular(jobs);
    out.push(kvTable(keyValues(tabular ? rest : { ...rest, ...(jobs ? { jobs } : {}) })));
    if (tabular && jobs && jobs.length > 0) {
      out.push(tableHtml(JOB_HEADERS, jobRows(jobs, HTML_ROWS), 'jobs'));
    }
    if (swiotlb) out.push(kvTable(keyValues(swiotlb, 'swiotlb')));
  }

  out.push('<h2>Input</h2>');
  const inputRows: Array<[string, string]> = [
    ['source', i.source], ['size', formatBytes(i.bytes)], ['lines', String(i.lines)], ['records', String(i.records)],
    ['skipped lines', i.skipped === 0 ? '0' : `${i.skipped} (${Object.entries(i.skipped_by_reason).map(([r, n]) => `${r} ${n}`).join(', ')})`],
    ['events', Object.entries(i.events).filter(([, n]) => n > 0).map(([e, n]) => `${e} ${n}`).join(', ')],
  ];
  out.push(kvTable(inputRows));
  return out.join('\n');
}

export const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0; } th, td { padding: .15em .7em; text-align: left; border-bottom: 1px solid #eee; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { font-weight: normal; color: #555; }
pre.report { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 12px; }
#chart { margin-top: 1em; } .note { color: #666; font-size: .9em; }
`;

/** The chart script: builds the uPlot chart from the embedded data, and exposes it for tests. */
const CHART_JS = `
(function () {
  var d = JSON.parse(document.getElementById('report-data').textContent);
  var el = document.getElementById('chart');
  var marks = function (color) {
    return { scale: 'events', stroke: color, width: 0, paths: function () { return null; },
             points: { show: true, size: 7, stroke: color, fill: color } };
  };
  var rates = function (color) {
    return { scale: 'per_s', stroke: color, width: 0, paths: function () { return null; },
             points: { show: true, size: 6, stroke: color, fill: color } };
  };
  var series = [
    { label: 't (s)' },
    { label: 'io_tlb_used (max)', scale: 'slots', stroke: '#1f77b4', width: 1.5, spanGaps: true },
    { label: 'io_tlb_used (min)', scale: 'slots', stroke: '#9ecae1', width: 1, spanGaps: true },
    { label: 'used_hiwater', scale: 'slots', stroke: '#d62728', width: 1.5, spanGaps: true },
    { label: 'high_throttle', scale: 'slots', stroke: '#ff7f0e', width: 1.5, dash: [6, 4], spanGaps: true },
    { label: 'low_throttle', scale: 'slots', stroke: '#bcbd22', width: 1.5, dash: [6, 4], spanGaps: true },
    { label: 'pool size (nslabs)', scale: 'slots', stroke: '#2ca02c', width: 2, spanGaps: true },
    { label: 'transient slots', scale: 'slots', stroke: '#98df8a', width: 1.5, dash: [2, 3], spanGaps: true },
    Object.assign({ label: 'map failures/s' }, rates('#e41a1c')),
    Object.assign({ label: 'I/O errors/s' }, rates('#a65628')),
    Object.assign({ label: 'packets dropped/s' }, rates('#f781bf')),
    Object.assign({ label: 'throttle waits' }, marks('#ff7f0e')),
    Object.assign({ label: 'stalls' }, marks('#6a3d9a')),
    Object.assign({ label: 'tunable changes' }, marks('#17becf')),
    Object.assign({ label: 'pool growths' }, marks('#2ca02c'))
  ];
  var data = [d.x_s, d.used_max, d.used_min, d.hiwater, d.high_throttle, d.low_throttle, d.nslabs, d.transient_nslabs,
              d.map_failures_per_s, d.io_errors_per_s, d.packets_dropped_per_s, d.throttle_waits, d.stalls, d.tunables, d.growths];
  var opts = {
    width: Math.max(600, el.clientWidth || 1000), height: 440,
    scales: { x: { time: false, range: function (u, min, max) { return [Math.min(0, min), Math.max(max, 0.001)]; } }, slots: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.05]; } },
              events: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } },
              per_s: { range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; } } },
    axes: [
      { scale: 'x', label: 'seconds since the run started' },
      { scale: 'slots', label: 'slots', size: 70 },
      { scale: 'per_s', side: 1, label: 'failures per second', grid: { show: false }, size: 70 },
      { scale: 'events', side: 1, label: 'events per ' + (d.bucket_ms >= 1000 ? (d.bucket_ms / 1000) + ' s' : d.bucket_ms + ' ms'), grid: { show: false }, size: 60 }
    ],
    bands: [{ series: [1, 2], fill: 'rgba(31,119,180,0.15)' }],
    series: series
  };
  var u = new uPlot(opts, data, el);
  window.addEventListener('resize', function () { u.setSize({ width: Math.max(600, el.clientWidth), height: 440 }); });
  var points = {};
  series.forEach(function (s, i) {
    if (i === 0) return;
    points[s.label] = data[i].filter(function (v) { return v !== null && v !== undefined; }).length;
  });
  window.cocoReport = { chart: u, points: points, bucketMs: d.bucket_ms, buckets: d.x_s.length };
  document.body.setAttribute('data-chart-ready', '1');
})();
`;

/** Where the chart's failure rates come from. */
function failureSourceNote(chart: ChartData): string {
  const src = Object.values(chart.failure_source);
  if (src.every((x) => x === 'counters')) return "from the samples' exact counters, over each sample interval";
  if (src.every((x) => x === 'records')) return 'from the printed records, which the ratelimit thins: a lower bound (this log\'s samples carry no counters)';
  return Object.entries(chart.failure_source).map(([k, x]) => `${k} from ${x === 'counters' ? 'the exact counters' : 'the printed records'}`).join(', ');
}

/**
 * A self-contained page: uPlot and its stylesheet inlined, the page's own CSS, its body, its data as
 * JSON in a script element (id dataId) and the script that draws from it. The one page head of every
 * HTML output (the run report, compare's page, the experiments page).
 */
export function htmlPage(p: { title: string; css: string; body: string; dataId: string; data: unknown; script: string }): string {
  const { js, css } = uplotAssets();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(p.title)}</title>
<style>${css}</style>
<style>${p.css}</style>
</head>
<body>
${p.body}
<script type="application/json" id="${esc(p.dataId)}">${JSON.stringify(p.data).replace(/</g, '\\u003c')}</script>
<script>${scriptSafe(js)}</script>
<script>${scriptSafe(p.script)}</script>
</body>
</html>
`;
}

/** The whole report as one HTML document. */
export function renderHtml(a: Analysis, chart: ChartData): string {
  const title = `coco-swiotlb run report: ${a.input.source}`;
  const start = a.input.run_start_time !== null ? new Date(a.input.run_start_time).toISOString() : 'unknown';
  const body = `<h1>${esc(title)}</h1>
<p class="sub">Started ${esc(start)}; ${esc(a.input.records)} records; ${esc(a.summary === null ? 'no final report' : a.summary.status !== undefined ? `status ${a.summary.status}` : 'final report present')}.</p>
<div id="chart"></div>
<p class="note">Time in seconds since the run started (the start barrier). Lines: io_tlb_used (maximum and minimum per ${esc(fmtMs(chart.bucket_ms))} bucket, band between), used_hiwater, the throttle thresholds, the pool size (io_tlb_nslabs) and the slots in transient pools (io_tlb_transient_nslabs), in slots (left axis). Points: map failures, I/O errors and dropped packets per second (${esc(failureSourceNote(chart))}; first right axis); throttle waits (at the time each wait began), stalls, tunable changes and pool growths (dynamic pools added, at the time each was added) per bucket (second right axis).</p>
${sections(a)}`;
  return htmlPage({ title, css: CSS, body, dataId: 'report-data', data: chart, script: CHART_JS });
}
