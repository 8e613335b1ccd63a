// The experiments' reports: one experiment as text (the command's output), every experiment as
// EXPERIMENTS.md (claims, setups, figures and verdicts of the full and the quick form, and whether
// they agree) and as one self-contained HTML page with a chart per experiment (the run report's page
// machinery, src/analyze/html.ts). The Markdown carries the verdicts as a JSON comment too, so a test
// can compare a quick form's verdict against the committed one.
import { CSS as REPORT_CSS, esc, htmlPage, tableHtml } from '../analyze/html.js';
import { table as textTable } from '../util/table.js';
import type { AnyExperiment, ExperimentResult, Table, VerdictWord } from './types.js';

/** One experiment's results: the full form, the quick form, or both. */
export interface ExperimentEntry {
  experiment: AnyExperiment;
  full?: ExperimentResult;
  quick?: ExperimentResult;
}

export interface AllResults {
  started: string;
  wall_ms: number;
  /** The host, for the reader: cores and the load average when the run began. */
  host: { cores: number; loadavg: number };
  entries: ExperimentEntry[];
  /** The command's arguments after `npm run experiment --` (default --all, or --all --quick with only quick forms). */
  command?: string;
  /**
   * --update: the EXPERIMENTS.md these entries rewrite. Every registered experiment not in entries
   * keeps its section and its verdicts from it, as recorded by its own last run.
   */
  previous?: { md: string; order: readonly AnyExperiment[] };
}

/** What EXPERIMENTS.md records per experiment: its verdicts, and when and how its section was run. */
export interface RecordedRun {
  full?: VerdictWord;
  quick?: VerdictWord;
  /** The run's start (ISO) and its command, when the file records them. */
  run?: string;
  command?: string;
}

/** The claim in one line: "quote" (author, source). */
export function claimLine(e: AnyExperiment): string {
  return `"${e.claim.quote}" (${e.claim.author}, ${e.claim.source})`;
}

/** One experiment's result as the command prints it. */
export function formatResult(e: AnyExperiment, r: ExperimentResult): string {
  const lines = [
    `${e.number}. ${e.name} (${r.form} form, ${r.repeat} repeat${r.repeat === 1 ? '' : 's'} per configuration, ${r.runs} VM runs, ${(r.wall_ms / 1000).toFixed(1)} s)`,
    `Claim: ${claimLine(e)}`,
    `Setup: ${e.setup}`,
    `Cannot: ${e.cannot}`,
    `Form: ${r.form === 'full' ? e.forms.full : e.forms.quick}`,
    '',
    ...textTable(r.table.head, r.table.rows),
    '',
    `Rule: ${e.rule}`,
    `Verdict: ${r.verdict.verdict.toUpperCase()}: ${r.verdict.why}`,
  ];
  if (r.not_ok.length > 0) lines.push('', `Runs that did not end ok (${r.not_ok.length}):`, ...r.not_ok.slice(0, 10).map((w) => `  ${w}`));
  return lines.join('\n') + '\n';
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function mdTable(t: Table): string[] {
  const head = t.head.map((h) => mdEscape(h.startsWith('>') ? h.slice(1) : h));
  const align = t.head.map((h) => (h.startsWith('>') ? '---:' : '---'));
  return [`| ${head.join(' | ')} |`, `| ${align.join(' | ')} |`, ...t.rows.map((r) => `| ${r.map(mdEscape).join(' | ')} |`)];
}

/** Whether the two forms' verdicts agree; undefined when only one form was run. */
export function agree(en: ExperimentEntry): boolean | undefined {
  if (en.full === undefined || en.quick === undefined) return undefined;
  return en.full.verdict.verdict === en.quick.verdict.verdict;
}

const VERDICTS_TAG = 'experiment-verdicts';

/** The `## N. name` sections of an EXPERIMENTS.md, by name: each from its heading to the next level-2 heading (the verdicts comment left out). */
export function mdSections(md: string): Map<string, string> {
  const out = new Map<string, string>();
  const body = md.replace(new RegExp(`\\n*<!-- ${VERDICTS_TAG} .*-->\\s*$`, 's'), '');
  const parts = body.split(/^(?=## )/m);
  for (const part of parts) {
    const m = /^## \d+\. (\S+)\n/.exec(part);
    if (m !== null) out.set(m[1]!, part.replace(/\s+$/, ''));
  }
  return out;
}

/** A section's Run line: when and by which command its figures were measured. */
function runLine(started: string, command: string, host?: { cores: number; loadavg: number }): string {
  return `*Run ${started} by \`npm run experiment -- ${command}\`${host !== undefined ? ` (${host.cores} cores, load average ${host.loadavg.toFixed(1)} at the start)` : ''}.*`;
}

/** EXPERIMENTS.md. */
export function renderMarkdown(all: AllResults): string {
  const min = (ms: number) => `${(ms / 60000).toFixed(1)} min`;
  const command = all.command ?? `--all${all.entries.every((en) => en.full === undefined) ? ' --quick' : ''}`;
  const fresh = new Map(all.entries.map((en) => [en.experiment.name, en]));
  const prev = all.previous;
  const prevVerdicts = prev === undefined ? {} : recordedVerdicts(prev.md);
  const prevSections = prev === undefined ? new Map<string, string>() : mdSections(prev.md);
  // An older file names its run only in its header: its sections were all run by that --all.
  const prevHeader = prev === undefined ? null : /`npm run experiment -- ([^`]+)` \(started (\S+), (\d+) cores, load average ([\d.]+) at the start\)/.exec(prev.md);
  type Row = { e: AnyExperiment; en?: ExperimentEntry; rec?: RecordedRun; section?: string };
  const rows: Row[] = prev === undefined
    ? all.entries.map((en) => ({ e: en.experiment, en }))
    : prev.order.flatMap((e): Row[] => {
      const en = fresh.get(e.name);
      if (en !== undefined) return [{ e, en }];
      const section = prevSections.get(e.name);
      return section === undefined ? [] : [{ e, rec: prevVerdicts[e.name] ?? {}, section }];
    });
  const verdictOf = (r: Row, form: 'full' | 'quick'): VerdictWord | undefined => (r.en !== undefined ? r.en[form]?.verdict.verdict : r.rec?.[form]);
  const agreeOf = (r: Row): boolean | undefined => {
    const f = verdictOf(r, 'full');
    const q = verdictOf(r, 'quick');
    return f === undefined || q === undefined ? undefined : f === q;
  };
  const header = prev === undefined
    ? `Generated by \`npm run experiment -- ${command}\` (started ${all.started}, ${all.host.cores} cores, load average ${all.host.loadavg.toFixed(1)} at the start); the whole run took ${min(all.wall_ms)} of wall time. Regenerate it with the same command; \`npm run experiment -- NAME\` runs one, \`--quick\` its short form, \`--update NAME...\` reruns the named ones and rewrites only their sections. Each section's Run line says when it was measured.`
    : `Sections ${all.entries.map((en) => en.experiment.name).join(', ')} regenerated by \`npm run experiment -- ${command}\` (started ${all.started}, ${all.host.cores} cores, load average ${all.host.loadavg.toFixed(1)} at the start; ${min(all.wall_ms)} of wall time); the others are as their own last run recorded them. Each section's Run line says when it was measured. \`npm run experiment -- --all\` regenerates every section; \`npm run experiment -- NAME\` runs one, \`--quick\` its short form.`;
  const out = [
    '# Experiments: the seed threads\' claims, checked',
    '',
    header,
    '',
    'Each experiment quotes its claim, says what the emulator models and what it cannot (its devices are models: a claim about absolute throughput is checked as a ratio), runs each configuration with repeats of the same seed (a cell is the median over the runs that ended ok, ±(max-min)/median when the repeats differ), and computes its verdict from the figures by the rule it states. The full form is the one to read; the quick form (fewer repeats, shorter runs, fewer sizes) is what the test suite runs, and it must reach the same verdict.',
    '',
    '## Verdicts',
    '',
    '| # | experiment | claim by | full form | quick form | same |',
    '| ---: | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const a = agreeOf(r);
    out.push(`| ${r.e.number} | [${r.e.name}](#${r.e.number}-${r.e.name}) | ${mdEscape(r.e.claim.author)} | ${verdictOf(r, 'full') ?? 'not run'} | ${verdictOf(r, 'quick') ?? 'not run'} | ${a === undefined ? '-' : a ? 'yes' : '**no: a finding**'} |`);
  }
  const differ = rows.filter((r) => agreeOf(r) === false);
  out.push('');
  out.push(differ.length === 0
    ? 'Every experiment run in both forms reached the same verdict in both.'
    : `Findings: ${differ.length} experiment${differ.length === 1 ? '' : 's'} reached a different verdict in the quick form than in the full one (${differ.map((r) => r.e.name).join(', ')}); their sections give both sets of figures.`);
  const recorded: Record<string, RecordedRun> = {};
  for (const r of rows) {
    const e = r.e;
    if (r.en === undefined) {
      // Kept as recorded: an older section gets the Run line of the run that made it.
      const run = r.rec?.run ?? prevHeader?.[2];
      const cmd = r.rec?.command ?? prevHeader?.[1];
      const hasRun = /^\*Run /m.test(r.section!);
      const section = hasRun || run === undefined || cmd === undefined ? r.section! : r.section!.replace(/\n\n/, `\n\n${runLine(run, cmd, prevHeader !== null && r.rec?.run === undefined ? { cores: Number(prevHeader[3]), loadavg: Number(prevHeader[4]) } : undefined)}\n\n`);
      out.push('', section);
      recorded[e.name] = { ...(r.rec?.full ? { full: r.rec.full } : {}), ...(r.rec?.quick ? { quick: r.rec.quick } : {}), ...(run !== undefined ? { run } : {}), ...(cmd !== undefined ? { command: cmd } : {}) };
      continue;
    }
    const en = r.en;
    out.push('', `## ${e.number}. ${e.name}`, '', runLine(all.started, command, all.host), '', `> ${e.claim.quote}`, '', `${e.claim.author}, ${e.claim.source}.`, '');
    out.push(`**Setup.** ${e.setup}`, '', `**What it cannot say.** ${e.cannot}`, '', `**Forms.** Full: ${e.forms.full} Quick: ${e.forms.quick}`, '', `**Rule.** ${e.rule}`);
    for (const res of [en.full, en.quick]) {
      if (res === undefined) continue;
      out.push('', `### ${res.form === 'full' ? 'Full' : 'Quick'} form: ${res.verdict.verdict}`, '');
      out.push(`${res.repeat} repeat${res.repeat === 1 ? '' : 's'} per configuration, ${res.runs} VM runs, ${(res.wall_ms / 1000).toFixed(0)} s.`, '');
      out.push(...mdTable(res.table), '');
      out.push(`**Verdict: ${res.verdict.verdict}.** ${res.verdict.why}`);
      if (res.not_ok.length > 0) out.push('', `Runs that did not end ok (${res.not_ok.length}): ${res.not_ok.slice(0, 5).map((w) => `\`${mdEscape(w)}\``).join('; ')}${res.not_ok.length > 5 ? '; ...' : ''}`);
    }
    if (agree(en) === false) out.push('', `**Finding:** the quick form says ${en.quick!.verdict.verdict}, the full form ${en.full!.verdict.verdict}.`);
    recorded[e.name] = { ...(en.full ? { full: en.full.verdict.verdict } : {}), ...(en.quick ? { quick: en.quick.verdict.verdict } : {}), run: all.started, command };
  }
  out.push('', `<!-- ${VERDICTS_TAG} ${JSON.stringify(recorded)} -->`, '');
  return out.join('\n');
}

/** The verdicts recorded in an EXPERIMENTS.md, by experiment name (with when each was run, where the file says). */
export function recordedVerdicts(md: string): Record<string, RecordedRun> {
  const m = new RegExp(`<!-- ${VERDICTS_TAG} (\\{.*\\}) -->`).exec(md);
  return m === null ? {} : (JSON.parse(m[1]!) as Record<string, RecordedRun>);
}

const CSS = `
.charts { display: flex; flex-direction: column; gap: 1em; } .verdict { font-weight: bold; }
.experiment { border-top: 1px solid #ccc; margin-top: 1.5em; }
`;

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/**
 * The chart script: each chart as uPlot bars (groups of bars: series k of group g at x = g*(n+1)+k,
 * the group's label under its middle) or lines; exposes what it drew for tests.
 */
const CHART_JS = `
(function () {
  var d = JSON.parse(document.getElementById('experiments-data').textContent);
  var palette = ${JSON.stringify(PALETTE)};
  var drawn = { charts: {} };
  d.charts.forEach(function (c, ci) {
    var el = document.getElementById('chart-' + ci);
    var n = c.series.length;
    var series = [{ label: c.xLabel }];
    var data;
    var points = 0;
    if (c.kind === 'bars') {
      var xs = [];
      c.x.forEach(function (_, g) { for (var k = 0; k < n; k++) xs.push(g * (n + 1) + k); });
      data = [xs];
      c.series.forEach(function (s, k) {
        var ys = xs.map(function (x) { var g = Math.floor(x / (n + 1)); return x % (n + 1) === k && s.values[g] !== undefined ? s.values[g] : null; });
        points += s.values.filter(function (v) { return v !== null; }).length;
        data.push(ys);
        series.push({ label: s.label, stroke: palette[k % palette.length], fill: palette[k % palette.length] + '99', paths: uPlot.paths.bars({ size: [0.9, 80] }), points: { show: false } });
      });
      var axisX = { label: c.xLabel, values: function (u, vals) { return vals.map(function (v) {
        if (!Number.isInteger(v)) return ''; var g = Math.floor(v / (n + 1)); return v % (n + 1) === Math.floor((n - 1) / 2) && c.x[g] !== undefined ? String(c.x[g]) : ''; }); } };
      new uPlot({ width: Math.max(600, Math.min(1100, 90 * c.x.length * (n + 1) / 2 + 200)), height: 300,
        scales: { x: { time: false, range: [-1, c.x.length * (n + 1) - 1] }, y: { range: function (u, lo, hi) { return [Math.min(0, lo), Math.max(1, hi) * 1.1]; } } },
        axes: [axisX, { label: c.yLabel, size: 70 }], series: series }, data, el);
    } else {
      data = [c.x];
      c.series.forEach(function (s, k) {
        points += s.values.filter(function (v) { return v !== null; }).length;
        data.push(s.values);
        series.push({ label: s.label, stroke: palette[k % palette.length], width: 1.5, spanGaps: true, points: { show: true, size: 6 } });
      });
      new uPlot({ width: 800, height: 300, scales: { x: { time: false } }, axes: [{ label: c.xLabel }, { label: c.yLabel, size: 70 }], series: series }, data, el);
    }
    drawn.charts[c.name] = points;
  });
  window.cocoExperiments = drawn;
  document.body.setAttribute('data-chart-ready', '1');
})();
`;

/** The HTML page: per experiment its claim, verdicts, figures table and one chart (of the full form when it was run). */
export function renderExperimentsHtml(all: AllResults): string {
  const charts = all.entries.map((en) => {
    const r = en.full ?? en.quick!;
    return { name: en.experiment.name, form: r.form, ...r.chart };
  });
  const sections = all.entries.map((en, i) => {
    const e = en.experiment;
    const r = en.full ?? en.quick!;
    const verdicts = [en.full, en.quick].filter((x): x is ExperimentResult => x !== undefined)
      .map((x) => `<p class="verdict">${esc(x.form)} form: ${esc(x.verdict.verdict)}: <span style="font-weight:normal">${esc(x.verdict.why)}</span></p>`).join('\n');
    return `<div class="experiment">
<h2 id="${esc(e.name)}">${esc(e.number)}. ${esc(e.name)}</h2>
<blockquote>${esc(e.claim.quote)}</blockquote><p class="sub">${esc(e.claim.author)}, ${esc(e.claim.source)}</p>
<p><b>Setup.</b> ${esc(e.setup)}</p><p><b>What it cannot say.</b> ${esc(e.cannot)}</p><p><b>Rule.</b> ${esc(e.rule)}</p>
${verdicts}
${tableHtml(r.table.head, r.table.rows)}
<h3>${esc(r.chart.title)} (${esc(r.form)} form)</h3>
<div id="chart-${i}"></div>
</div>`;
  }).join('\n');
  const title = 'coco-swiotlb experiments: the seed threads\' claims, checked';
  const summary = tableHtml(['>#', 'experiment', 'claim by', 'full form', 'quick form'], all.entries.map((en) => [
    String(en.experiment.number), en.experiment.name, en.experiment.claim.author, en.full?.verdict.verdict ?? 'not run', en.quick?.verdict.verdict ?? 'not run',
  ]));
  const body = `<h1>${esc(title)}</h1>
<p class="sub">Started ${esc(all.started)}; ${esc(all.host.cores)} cores; the run took ${esc((all.wall_ms / 60000).toFixed(1))} min.</p>
${summary}
${sections}`;
  return htmlPage({ title, css: REPORT_CSS + CSS, body, dataId: 'experiments-data', data: { charts }, script: CHART_JS });
}
