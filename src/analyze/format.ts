// The analyzer's text output: sections in the order a reader asks the questions (what ran, how full
// the pool got, what failed, who waited, what stuck, how it ended), tables aligned like fio's.
import { formatBytes } from '../util/units.js';
import { table } from '../util/table.js';
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import type { JobSummary, RunSummary } from '../log/events.js';
import { areaHiwaterText, formatReport, type RunReport } from '../vm/report.js';
import type { Analysis, At, ErrorGroup, ExactCount } from './analyzer.js';

/** "+1.234s": when, relative to the run's start. */
export function fmtAt(at: At): string {
  const s = at.t_ms / 1000;
  return `${s < 0 ? '-' : '+'}${Math.abs(s).toFixed(3)}s`;
}

/** A duration given in ms, in the unit that reads best. */
export function fmtMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Number.isInteger(ms) ? ms : ms.toFixed(1)} ms`;
}

/** A duration given in microseconds. */
export function fmtUs(us: number): string {
  if (us >= 1_000_000) return `${(us / 1_000_000).toFixed(2)} s`;
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  return `${Math.round(us)} us`;
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** A value for the key/value listings: sizes and durations get a readable form alongside. */
function fmtValue(key: string, v: unknown): string {
  if (typeof v === 'number') {
    if (Number.isFinite(v) && /(_bytes|Bytes)$|^size$|bytes_bounced$|^bytes$/.test(key)) return `${v} (${formatBytes(v)})`;
    if (/(_ms|Ms)$/.test(key)) return `${num(v)} ms`;
    if (/(_us|Us)$/.test(key)) return `${num(v)} us`;
    return num(v);
  }
  if (typeof v === 'string') return v === '' ? '""' : v;
  return JSON.stringify(v);
}

/** Flatten an object into "key  value" lines (nested keys dotted, arrays of objects one per line). */
export function keyValues(obj: Record<string, unknown>, prefix = ''): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out.push(...keyValues(v as Record<string, unknown>, key));
    } else if (Array.isArray(v) && v.some((e) => e !== null && typeof e === 'object')) {
      // Flat objects (a device, a pool) read best on one line; nested ones (a job report) flattened.
      v.forEach((e, i) => {
        const k = `${key}[${i}]`;
        if (e === null || typeof e !== 'object') out.push([k, String(e)]);
        else if (Object.values(e as object).some((ev) => ev !== null && typeof ev === 'object')) out.push(...keyValues(e as Record<string, unknown>, k));
        else out.push([k, Object.entries(e as Record<string, unknown>).map(([ek, ev]) => `${ek}=${String(ev)}`).join(' ')]);
      });
    } else if (Array.isArray(v)) {
      out.push([key, v.length > 16 ? `[${v.slice(0, 16).join(', ')}, ... ${v.length} items]` : `[${v.join(', ')}]`]);
    } else {
      out.push([key, fmtValue(k, v)]);
    }
  }
  return out;
}

function kvLines(pairs: Array<[string, string]>, indent = '  '): string[] {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`);
}

function errorGroupRows(groups: ErrorGroup[], limit: number): string[][] {
  return groups.slice(0, limit).map((g) => [g.device, g.kind, g.reason, String(g.count), formatBytes(g.bytes), fmtAt(g.first), fmtAt(g.last)]);
}

/** The timeline summary as label/value pairs: the text and the HTML report show the same. */
/** Growth times listed in the timeline (the rest are counted). */
const GROWTH_TIMES = 10;

/** io_tlb_nslabs over the run: at the start, at the end (last sample), and its peak. */
function poolSizeText(t: Analysis['timeline']): string {
  const slots = (n: number): string => `${n} slots (${formatBytes(n * IO_TLB_SIZE)})`;
  const end = t.nslabs ?? 0;
  const start = t.start_nslabs ?? end;
  const peak = Math.max(start, t.max_nslabs ?? 0);
  if (start === end && peak === end) return slots(end);
  return `${slots(start)} at the start, ${slots(end)} at the end, peak ${slots(peak)}`;
}

export function timelinePairs(a: Analysis): Array<[string, string]> {
  const t = a.timeline;
  const pairs: Array<[string, string]> = [];
  pairs.push(['pool size', poolSizeText(t)]);
  const g = t.growths;
  if (g.count > 0) {
    const shown = g.list.slice(0, GROWTH_TIMES).map(fmtAt).join(', ');
    const more = g.count - Math.min(GROWTH_TIMES, g.list.length);
    pairs.push(['pool growths', `${g.count} dynamic ${g.count === 1 ? 'pool' : 'pools'} added (+${g.nslabs} slots, ${formatBytes(g.nslabs * IO_TLB_SIZE)}) at ${shown}${more > 0 ? `, ... ${more} more` : ''}`]);
  }
  const tr = t.transient_nslabs;
  if (tr !== null) pairs.push(['transient slots', `peak ${tr.peak} (${formatBytes(tr.peak * IO_TLB_SIZE)}) at ${fmtAt(tr.peak_at)}, ${tr.end} at the end (io_tlb_transient_nslabs, as sampled)`]);
  if (t.peak_used) pairs.push(['peak io_tlb_used', `${t.peak_used.value} slots (${t.peak_used.pct_of_pool.toFixed(1)}% of pool) at ${fmtAt(t.peak_used.at)}`]);
  pairs.push(['max used_hiwater', String(t.max_hiwater)]);
  if (t.mean_used !== null) pairs.push(['mean io_tlb_used', `${t.mean_used.toFixed(1)} slots`]);
  pairs.push(['thresholds', t.time_above_ms.high_throttle === null ? 'throttling off (high_throttle 0)' : `high_throttle ${t.high_throttle}, low_throttle ${t.low_throttle}`]);
  const d = t.duration_ms;
  if (t.time_above_ms.low_throttle !== null) pairs.push(['above low_throttle', `${fmtMs(t.time_above_ms.low_throttle)} (${pct(t.time_above_ms.low_throttle, d)})`]);
  if (t.time_above_ms.high_throttle !== null) pairs.push(['above high_throttle', `${fmtMs(t.time_above_ms.high_throttle)} (${pct(t.time_above_ms.high_throttle, d)})`]);
  pairs.push(['above 50% of pool', `${fmtMs(t.time_above_ms.pct50)} (${pct(t.time_above_ms.pct50, d)})`]);
  pairs.push(['above 90% of pool', `${fmtMs(t.time_above_ms.pct90)} (${pct(t.time_above_ms.pct90, d)})`]);
  // A pool fails maps long before io_tlb_used reaches nslabs (an area is full, or no free run is long
  // enough): the two rows say how long an area was full at the samples, and how long maps failed.
  if (t.area_nslabs !== null) pairs.push(['an area full', `${fmtMs(t.time_above_ms.area_full)} (${pct(t.time_above_ms.area_full, d)}) with some area at ${t.area_nslabs} of ${t.area_nslabs} slots when sampled`]);
  const m = a.map_failures;
  if (m.sampled !== null) pairs.push(['maps failing', `${fmtMs(m.intervals_ms)} (${pct(m.intervals_ms, d)}): sample intervals with at least one failed map`]);
  if (t.peak_throttle_queue_len) pairs.push(['peak throttle queue', `${t.peak_throttle_queue_len.value} at ${fmtAt(t.peak_throttle_queue_len.at)}`]);
  if (t.iops) pairs.push(['iops', `mean ${t.iops.mean.toFixed(0)}, max ${t.iops.max.toFixed(0)} over one sample interval`]);
  if (t.bw_bytes_per_s) pairs.push(['bandwidth', `mean ${formatBytes(Math.round(t.bw_bytes_per_s.mean))}/s, max ${formatBytes(Math.round(t.bw_bytes_per_s.max))}/s over one sample interval`]);
  if (t.area_peak_used.length > 0) {
    const peak = Math.max(...t.area_peak_used);
    pairs.push(['area peak used', `${t.area_peak_used.length} areas, busiest ${peak} slots (area ${t.area_peak_used.indexOf(peak)}), least ${Math.min(...t.area_peak_used)} (as sampled)`]);
  }
  if (t.area_used_hiwater.length > 0 && t.area_nslabs !== null) {
    pairs.push(['area used_hiwater', `(of ${t.area_nslabs} slots per area) ${areaHiwaterText(t.area_nslabs, t.area_used_hiwater)}`]);
  }
  return pairs;
}

/** "12 (exact, from the run summary)": a count and where it comes from. */
export function exactCountText(c: ExactCount): string {
  const src = c.source === 'run_summary' ? 'the run summary' : c.source === 'samples' ? 'the samples' : 'the printed records: a lower bound, the log has no counters';
  return `${c.total.toLocaleString('en-US')} (${c.source === 'records' ? '' : 'exact, '}from ${src})`;
}

/** When a counted event happened, at the resolution of the samples. */
export function exactCountWhen(c: ExactCount): string | undefined {
  if (c.first === null || c.last === null) return undefined;
  const span = (x: { from: At; to: At }) => `${fmtAt(x.from)}..${fmtAt(x.to)}`;
  return `first between ${span(c.first)}, last between ${span(c.last)}${c.after_last_sample > 0 ? ` (${c.after_last_sample} after the last sample)` : ''}; in ${c.intervals} sample ${c.intervals === 1 ? 'interval' : 'intervals'}`;
}

/** What the example tables are: the printed records of a ratelimited event. */
export function printedText(c: ExactCount, what: string): string {
  return `${c.printed} ${what} records printed (the ratelimit prints at most 10 per 5 s per vCPU${c.suppressed > 0 ? `; they report ${c.suppressed} suppressed` : ''}): examples of the message, by group`;
}

/** The jobs table of a run summary whose jobs are flat JobSummary records: headers, then rows. */
export const JOB_HEADERS = ['job', 'device', 'rw', '>ios', '>iops', '>bw', '>errors', '>lat p50', '>lat p99', '>lat max'];
export function jobRows(jobs: readonly JobSummary[], max: number): string[][] {
  return jobs.slice(0, max).map((j) => [j.name, j.device ?? '', j.rw ?? '', j.ios !== undefined ? String(j.ios) : '',
    j.iops !== undefined ? j.iops.toFixed(0) : '', j.bw_bytes_per_s !== undefined ? `${formatBytes(Math.round(j.bw_bytes_per_s))}/s` : '',
    j.errors !== undefined ? String(j.errors) : '', j.lat_us?.p50 !== undefined ? fmtUs(j.lat_us.p50) : '',
    j.lat_us?.p99 !== undefined ? fmtUs(j.lat_us.p99) : '', j.lat_us?.max !== undefined ? fmtUs(j.lat_us.max) : '']);
}

/**
 * The VM's own fio-style text for a run_summary that is the VM's RunReport (src/vm/report.ts), so
 * the analyzer prints the final report exactly as the run did; undefined for any other shape.
 */
export function vmReportText(summary: RunSummary): string | undefined {
  const s = summary as Record<string, unknown>;
  const isObj = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!Array.isArray(s['jobs']) || !Array.isArray(s['groups']) || !isObj(s['swiotlb']) || !isObj(s['run'])) return undefined;
  try {
    return formatReport(summary as unknown as RunReport);
  } catch {
    return undefined; // a report of another version: list it key by key instead
  }
}

/** Whether a report's jobs have the flat shape of JobSummary (else they are listed key by key). */
export function jobsTabular(jobs: unknown): jobs is JobSummary[] {
  return Array.isArray(jobs) && jobs.length > 0 && jobs.every((j) => j !== null && typeof j === 'object'
    && typeof (j as JobSummary).name === 'string' && (typeof (j as JobSummary).iops === 'number' || typeof (j as JobSummary).ios === 'number'));
}

/** Rows shown per table in text output (JSON output has them all). */
const TEXT_ROWS = 20;

export function formatText(a: Analysis): string {
  const L: string[] = [];
  const i = a.input;
  const start = i.run_start_time !== null ? new Date(i.run_start_time).toISOString() : 'unknown';
  L.push(`Run log ${i.source}: ${i.records} records in ${i.lines} lines (${formatBytes(i.bytes)}), started ${start}, spans ${fmtMs(i.duration_ms)}`);
  if (i.skipped > 0) {
    const why = Object.entries(i.skipped_by_reason).map(([r, n]) => `${r}: ${n}`).join(', ');
    L.push(`  skipped ${i.skipped} lines that are not run-log records (${why})`);
  }

  L.push('', 'Configuration');
  if (a.config === null) L.push('  (no run_config record)');
  else L.push(...kvLines(keyValues(a.config)));
  if (a.config_records > 1) L.push(`  note: ${a.config_records} run_config records; the log holds several runs, shown as one`);

  if (a.boot.lines.length > 0) {
    L.push('', 'Boot');
    L.push(...a.boot.lines.map((l) => `  ${l}`));
    if (a.boot.more > 0) L.push(`  ... ${a.boot.more} more`);
  }
  if (a.pools.count > 0) {
    L.push('', `Pools: ${a.pools.count} (${Object.entries(a.pools.by_kind).map(([k, n]) => `${k} ${n}`).join(', ')})`);
    L.push(...table(['>pool', 'kind', '>nslabs', 'size', '>areas', '>when'],
      a.pools.list.slice(0, TEXT_ROWS).map((p) => [String(p.pool), p.kind, String(p.nslabs), formatBytes(p.nslabs * IO_TLB_SIZE), String(p.nareas), fmtAt(p.at)])));
    if (a.pools.count > Math.min(TEXT_ROWS, a.pools.list.length)) L.push(`  ... ${a.pools.count - Math.min(TEXT_ROWS, a.pools.list.length)} more`);
  }

  const t = a.timeline;
  L.push('', `Timeline: ${t.samples} samples${t.sample_interval_ms !== null ? `, every ${fmtMs(t.sample_interval_ms)}` : ''}, ${fmtMs(t.duration_ms)} covered`);
  if (t.samples === 0) {
    L.push('  (no sample records)');
  } else {
    L.push(...kvLines(timelinePairs(a)));
  }

  const m = a.map_failures;
  L.push('', `Map failures: ${exactCountText(m)}`);
  const mWhen = exactCountWhen(m);
  if (mWhen !== undefined) L.push(`  ${mWhen}`);
  if (m.printed > 0) {
    L.push(`  ${printedText(m, 'map_failure')}`);
    L.push(...table(['device', '>size', '>records', '>first', '>last', 'direction'],
      m.groups.slice(0, TEXT_ROWS).map((g) => [g.device, String(g.size), String(g.count), fmtAt(g.first), fmtAt(g.last),
        Object.entries(g.dirs).map(([k, n]) => `${k} ${n}`).join(', ')])));
    if (m.groups.length > TEXT_ROWS) L.push(`  ... ${m.groups.length - TEXT_ROWS} more groups (all in --output-format json)`);
    if (m.groups_dropped > 0) L.push(`  ${m.groups_dropped} records beyond the group limit are counted only in the printed total`);
  }

  const th = a.throttle;
  L.push('', `Throttle waits: ${th.waits}${th.waits > 0 ? ` (${Object.entries(th.by_reason).map(([r, n]) => `${r} ${n}`).join(', ')})` : ''}`);
  if (th.waits > 0) {
    const w = th.wait_us;
    L.push(`  total ${fmtUs(th.wait_us_total)}, mean ${fmtUs(w.mean)}`);
    L.push(`  percentiles  min ${fmtUs(w.min)}  p50 ${fmtUs(w.p50)}  p90 ${fmtUs(w.p90)}  p99 ${fmtUs(w.p99)}  p99.9 ${fmtUs(w.p999)}  max ${fmtUs(w.max)}`);
    if (th.longest) {
      L.push(`  longest ${fmtUs(th.longest.wait_us)}: ${th.longest.device} on vCPU ${th.longest.vcpu}, ${th.longest.size} bytes, used ${th.longest.used} > ${th.longest.reason}_throttle, admitted at ${fmtAt(th.longest.at)}`);
    }
    const devs = Object.entries(th.by_device).sort((x, y) => y[1].wait_us_total - x[1].wait_us_total);
    L.push(...table(['device', '>waits', '>total', '>longest'], devs.slice(0, TEXT_ROWS).map(([d, v]) => [d, String(v.waits), fmtUs(v.wait_us_total), fmtUs(v.wait_us_max)])));
  }
  if (th.unfinished > 0) L.push(`  ${th.unfinished} waits began (throttle_begin) with no throttle_end in the log`);

  for (const [title, g, what, kind] of [['I/O errors', a.io_errors, 'io_error', 'op'], ['Packets dropped', a.packet_drops, 'packet_dropped', 'dir']] as const) {
    if (g.total === 0 && g.printed === 0) continue;
    L.push('', `${title}: ${exactCountText(g)}`);
    const when = exactCountWhen(g);
    if (when !== undefined) L.push(`  ${when}`);
    if (g.printed > 0) {
      L.push(`  ${printedText(g, what)}`);
      L.push(...table(['device', kind, 'reason', '>records', '>bytes', '>first', '>last'], errorGroupRows(g.groups, TEXT_ROWS)));
    }
  }

  const st = a.stalls;
  L.push('', `Stalls: ${st.total}${st.total > 0 ? ` (longest parked ${fmtMs(st.longest_parked_ms)}${st.self_deadlocks > 0 ? `, ${st.self_deadlocks} self-deadlocks` : ''})` : ''}`);
  for (const s of st.list.slice(0, TEXT_ROWS)) {
    L.push(`  ${fmtAt(s.at)}  holder ${s.holder.device} on vCPU ${s.holder.vcpu} (${s.holder.size} bytes); ${s.waiters.length} ${s.waiters.length === 1 ? 'waiter' : 'waiters'} parked ${fmtMs(s.parked_ms)}${s.kind ? ` [${s.kind}]` : ''}`);
    for (const w of s.waiters.slice(0, 8)) L.push(`      waiter ${w.device} on vCPU ${w.vcpu} (${w.size} bytes)${w.waited_ms !== undefined ? `, ${fmtMs(w.waited_ms)}` : ''}`);
  }
  if (st.total > Math.min(TEXT_ROWS, st.list.length)) L.push(`  ... ${st.total - Math.min(TEXT_ROWS, st.list.length)} more`);

  if (a.tunables.total > 0) {
    L.push('', `Tunables changed: ${a.tunables.total}`);
    for (const c of a.tunables.list.slice(0, TEXT_ROWS)) L.push(`  ${fmtAt(c.at)}  ${c.name}: ${String(c.old)} -> ${String(c.new)}`);
  }
  const other: Array<[string, string]> = [];
  if (a.double_unmaps.total > 0) other.push(['double unmaps', `${a.double_unmaps.total} (${Object.entries(a.double_unmaps.by_device).map(([d, n]) => `${d} ${n}`).join(', ')})`]);
  if (a.bounce_overflows.total > 0) other.push(['bounce overflows', `${a.bounce_overflows.total} (${Object.entries(a.bounce_overflows.by_device).map(([d, n]) => `${d} ${n}`).join(', ')})`]);
  for (const [text, n] of Object.entries(a.warnings.by_text)) other.push([`warning (x${n})`, text]);
  if (a.log_overflows.records_dropped > 0) other.push(['log records dropped', `${a.log_overflows.records_dropped} (${Object.entries(a.log_overflows.by_source).map(([d, n]) => `${d} ${n}`).join(', ')})`]);
  if (other.length > 0) L.push('', 'Other events', ...kvLines(other));
  if (a.worker_errors.total > 0) {
    L.push('', `Thread errors: ${a.worker_errors.total} (${a.worker_errors.fatal} fatal)`);
    for (const e of a.worker_errors.list.slice(0, TEXT_ROWS)) L.push(`  ${fmtAt(e.at)}  ${e.level} ${e.thread}: ${e.error.name}: ${e.error.message}`);
  }

  L.push('', 'Final report');
  const vmText = a.summary === null ? undefined : vmReportText(a.summary);
  if (a.summary === null) {
    L.push('  (no run_summary record: the run did not finish, or the log is incomplete)');
  } else if (vmText !== undefined) {
    L.push(...vmText.trimEnd().split('\n').map((l) => (l === '' ? '' : `  ${l}`)));
  } else {
    const { jobs, swiotlb, ...rest } = a.summary;
    const tabular = jobsTabular(jobs);
    L.push(...kvLines(keyValues(tabular ? rest : { ...rest, ...(jobs ? { jobs } : {}) })));
    if (tabular && jobs && jobs.length > 0) {
      L.push(...table(JOB_HEADERS, jobRows(jobs, 256)));
    }
    if (swiotlb) L.push(...kvLines(keyValues(swiotlb, 'swiotlb')));
  }
  return `${L.join('\n')}\n`;
}

/** The one-line warning about skipped lines, for stderr (undefined when none were skipped). */
export function skippedWarning(a: Analysis): string | undefined {
  const i = a.input;
  if (i.skipped === 0) return undefined;
  const why = Object.entries(i.skipped_by_reason).map(([r, n]) => `${r} ${n}`).join(', ');
  const first = i.skipped_examples[0];
  return `analyze: warning: skipped ${i.skipped} of ${i.lines} lines that are not run-log records (${why})${first ? `; first at line ${first.line}: ${first.reason}: ${first.detail}` : ''}`;
}
