// The end-of-run report, laid out like fio 3.x's normal output (stat.c: show_thread_status_normal,
// show_ddir_status, display_lat, show_clat_percentiles, show_group_stats) so that people can read it,
// and diff it against real fio runs, with the habits they already have. Numbers follow fio's default
// options: kb_base=1024 (binary prefixes first, decimal in parentheses), unit_base=bytes,
// sig_figs=4, percentile_precision=2, clat percentiles only.
//
// Left out because the emulator has no such data: slat and total lat lines, the bw/iops sample
// lines, the "lat (usec)" distribution, cpu usage, IO depths, disk stats. Changed: the job header
// ends with "cpus=0-3" where fio has "pid=N: <date>", and is printed even for a job that moved no
// bytes (fio prints nothing for it), so that its errors show. Added: the "errors:" line.
import { assert } from '../errors.js';
import { parseSize } from '../util/units.js';
import type { HistogramSnapshot } from './histogram.js';

/** One direction of a job (or of a group of jobs reported together). */
export interface DirectionStats {
  /** Completed I/Os: fio's total_io_u. */
  ios: number;
  bytes: number;
  /** Failed I/Os in this direction (kept for JSON; the text shows the job's errors_total). */
  errors: number;
  /** Completion latency. */
  clat: HistogramSnapshot;
  /**
   * This direction's own runtime, whole ms, when it differs from the job's (fio keeps one per
   * direction: a write job's verify phase is read time, not write time). Default the job's runtime_ms.
   */
  runtime_ms?: number;
}

/** One entry of fio's job list: a clone, or with group_reporting the clones and jobs summed into one (report.ts reportingUnits). Plain, JSON-able data. */
export interface JobReport {
  name: string;
  groupid: number;
  /** Jobs summed into this report: fio's "jobs=". */
  jobs: number;
  rw: string;
  /**
   * Block size per data direction, as fio keeps one per direction (bs=4k,64k is 4k reads, 64k
   * writes; its start line prints "(R) ..., (W) ..."), each in job-file form with exact values: a
   * size "4k" or "1500", a range "4k-64k" (bsrange), or weighted sizes "4k/50:64k/50" (bssplit).
   * No trim value: the emulator runs no trim workload.
   */
  bs: { read: string; write: string };
  ioengine: string;
  iodepth: number;
  /** Whole milliseconds. */
  runtime_ms: number;
  read?: DirectionStats;
  write?: DirectionStats;
  errors_total: number;
  /** Text of the first error, e.g. the kernel-style "swiotlb buffer is full" message. */
  first_error?: string;
  /** vCPUs the job ran on. */
  cpus: number[];
}

/**
 * One direction of a group ("Run status group N"), as fio's sum_group_stats builds it from the
 * group's reported jobs that moved bytes in that direction: the totals, the aggregate bandwidth
 * over the longest of their runtimes, and the least and largest of their own bandwidths and runtimes.
 */
export interface GroupDirection {
  bytes: number;
  ios: number;
  /** fio's agg: bytes * 1000 / max_run_ms, in bytes per second (integer division). */
  bw_bytes: number;
  /** Least and largest of each job's own bytes * 1000 / runtime. */
  min_bw_bytes: number;
  max_bw_bytes: number;
  /** Least and largest of the jobs' runtimes, whole milliseconds. */
  min_run_ms: number;
  max_run_ms: number;
}

/** One group of jobs ("Run status group N"): per direction, see GroupDirection. */
export interface GroupReport {
  groupid: number;
  /**
   * The group's span, whole milliseconds: its first job's start to its last job's end (startdelay
   * included). Not in fio's lines (they use each job's own runtime); a rate over a whole run of
   * stonewalled groups divides by the sum of these.
   */
  runtime_ms: number;
  read?: GroupDirection;
  write?: GroupDirection;
}

// fio's defaults, see the header comment.
const SIG_FIGS = 4;
const PERCENTILE_PRECISION = 2;
/** errno for I/O error, the error fio reports for a failed I/O (err= 5, "Input/output error"). */
const EIO = 5;

const SI_PREFIXES: readonly string[] = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const IEC_PREFIXES: readonly string[] = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** Units num2str appends: fio's N2S_NONE, N2S_BYTE, N2S_BYTEPERSEC. */
export type N2sUnit = '' | 'B' | 'B/s';

/**
 * C's printf("%.<decimals>f") for a non-negative double. toFixed already rounds the exact binary
 * value, but on an exact tie (x.125 to two places) it picks the larger digit where glibc picks the
 * even one. A tie at d decimals means the reduced denominator of x is exactly 2^(d+1).
 */
export function formatFixed(x: number, decimals: number): string {
  const s = x.toFixed(decimals);
  const tie = Number.isInteger(x * 2 ** (decimals + 1)) && !Number.isInteger(x * 2 ** decimals);
  if (!tie) return s;
  const last = s.charCodeAt(s.length - 1) - 48;
  return last % 2 === 1 ? s.slice(0, -1) + String(last - 1) : s;
}

/**
 * fio's num2str(num, maxlen, base=1, pow2, units) from lib/num2str.c: divide by 1000 (or 1024) until
 * at most `maxlen` digits remain, then fill the room left with decimals of the last remainder only,
 * or round with it when there is no room. Earlier remainders are dropped, so the result can be a
 * little low: fio's own "carry rounding error", kept so our numbers match fio's.
 */
export function num2str(num: number, maxlen: number, pow2: boolean, unit: N2sUnit): string {
  assert(Number.isSafeInteger(num) && num >= 0, `num2str: ${num} is not a whole number`);
  const thousand = pow2 ? 1024 : 1000;
  const prefixes = pow2 ? IEC_PREFIXES : SI_PREFIXES;
  assert(Number.isSafeInteger(maxlen) && maxlen >= 1, `num2str: maxlen ${maxlen} is not at least 1`);
  let n = num;
  let post = 0;
  let modulo = -1;
  while (String(n).length > maxlen) {
    // Bounded: 2^53 has at most 16 digits and E (10^18) is the last prefix.
    assert(post < prefixes.length - 1, `num2str: ${num} does not fit ${maxlen} digits`);
    modulo = n % thousand;
    n = Math.floor(n / thousand);
    post++;
  }
  const prefix = prefixes[post]!;
  if (modulo === -1) return `${n}${prefix}${unit}`;
  const room = maxlen - String(n).length;
  if (room <= 1) {
    if (modulo >= thousand / 2) n++;
    return `${n}${prefix}${unit}`;
  }
  const fraction = formatFixed(modulo / thousand, room - 1);
  if (fraction[0] === '1') n++;
  return `${n}.${fraction.slice(2)}${prefix}${unit}`;
}

/** IOPS as fio prints them: "4801", "12.3k", "1234k". */
export function formatIops(iops: number): string {
  return num2str(iops, SIG_FIGS, false, '');
}

/** Bandwidth as fio prints it with kb_base=1024: "48.0MiB/s (50.3MB/s)". */
export function formatBandwidth(bytesPerSec: number): string {
  return `${num2str(bytesPerSec, SIG_FIGS, true, 'B/s')} (${num2str(bytesPerSec, SIG_FIGS, false, 'B/s')})`;
}

/** amount * 1000 / runtime_ms, truncated, as fio's integer arithmetic; exact past 2^53 / 1000. */
function perSecond(amount: number, runtimeMs: number): number {
  assert(Number.isSafeInteger(amount) && amount >= 0, `fio report: ${amount} is not a whole count`);
  return Number((BigInt(amount) * 1000n) / BigInt(runtimeMs));
}

function checkRuntime(runtimeMs: number, what: string): void {
  assert(Number.isSafeInteger(runtimeMs) && runtimeMs >= 0, `fio report: ${what} runtime_ms ${runtimeMs} is not a whole number of milliseconds`);
}

export type LatencyUnit = 'nsec' | 'usec' | 'msec';

const NS_PER: Readonly<Record<LatencyUnit, number>> = { nsec: 1, usec: 1000, msec: 1_000_000 };

/**
 * Unit of the "clat (unit): min=..., max=..., avg=..., stdev=..." line (stat.h nsec_to_msec,
 * nsec_to_usec): msec when min > 2 ms, max > 99.999999 ms and stdev > 1 ms; else usec when
 * min > 2 us, max > 99.999 us and stdev > 1 us; else nsec.
 */
export function latencyStatsUnit(min_ns: number, max_ns: number, stdev_ns: number): LatencyUnit {
  if (min_ns > 2_000_000 && max_ns > 99_999_999 && stdev_ns > 1_000_000) return 'msec';
  if (min_ns > 2000 && max_ns > 99_999 && stdev_ns > 1000) return 'usec';
  return 'nsec';
}

/**
 * Unit of the percentile table (show_clat_percentiles), chosen from the smallest and largest
 * percentile values rather than min and max, and without the stdev test: msec when the smallest is
 * above 2 ms and the largest above 99.999999 ms, usec when above 2 us and 99.999 us, else nsec.
 */
export function percentileUnit(minValue_ns: number, maxValue_ns: number): LatencyUnit {
  if (minValue_ns > 2_000_000 && maxValue_ns > 99_999_999) return 'msec';
  if (minValue_ns > 2000 && maxValue_ns > 99_999) return 'usec';
  return 'nsec';
}

/** "    clat (usec): min=12, max=4012, avg=160.21, stdev=90.11" (fio's display_lat). */
export function formatLatencyLine(name: string, clat: HistogramSnapshot): string {
  let min = Math.floor(clat.min_ns);
  let max = Math.floor(clat.max_ns);
  const unit = latencyStatsUnit(min, max, clat.stdev_ns);
  const div = NS_PER[unit];
  // fio divides its integer min and max, truncating, and its double mean and stdev.
  min = Math.floor(min / div);
  max = Math.floor(max / div);
  const mean = clat.mean_ns / div;
  const dev = clat.stdev_ns / div;
  return `    ${name} (${unit}): min=${num2str(min, 6, false, '')}, max=${num2str(max, 6, false, '')}, ` +
    `avg=${formatFixed(mean, 2).padStart(5)}, stdev=${formatFixed(dev, 2).padStart(5)}\n`;
}

/** The percentile table (fio's show_clat_percentiles), four or so to a line. */
export function formatPercentiles(name: string, clat: HistogramSnapshot): string {
  const list = clat.percentiles;
  if (list.length === 0) return '';
  let minv = Infinity;
  let maxv = 0;
  for (const { value_ns } of list) {
    minv = Math.min(minv, value_ns);
    maxv = Math.max(maxv, value_ns);
  }
  const unit = percentileUnit(minv, maxv);
  const div = NS_PER[unit];
  const whole = Math.floor(maxv / div);
  // fio: max(5, (int)(log10(maxv / divisor) + 1)), i.e. the digits of the truncated largest value.
  const timeWidth = Math.max(5, whole === 0 ? 0 : String(whole).length);
  const perLine = Math.floor((80 - 7) / (PERCENTILE_PRECISION + 10 + timeWidth));
  let out = `    ${name} percentiles (${unit}):\n     |`;
  for (let j = 0; j < list.length; j++) {
    if (j !== 0 && j % perLine === 0) out += '     |';
    // Scaled down rounding up, one factor of 1000 at a time, as fio does.
    let v = Math.floor(list[j]!.value_ns);
    for (let d = div; d > 1; d /= 1000) v = Math.floor((v + 999) / 1000);
    const last = j === list.length - 1;
    const pct = formatFixed(list[j]!.p, PERCENTILE_PRECISION).padStart(PERCENTILE_PRECISION + 3);
    out += ` ${pct}th=[${String(v).padStart(timeWidth)}]${last ? '\n' : ','}`;
    if (!last && j % perLine === perLine - 1) out += '\n';
  }
  return out;
}

/** "  read: IOPS=..., BW=... (...)(io/runtime msec)" and its latency lines (fio's show_ddir_status). */
function formatDirection(ddir: 'read' | 'write', d: DirectionStats, runtimeMs: number): string {
  const iops = perSecond(d.ios, runtimeMs);
  const bw = perSecond(d.bytes, runtimeMs);
  let out = `  ${ddir}: IOPS=${formatIops(iops)}, BW=${formatBandwidth(bw)}` +
    `(${num2str(d.bytes, SIG_FIGS, true, 'B')}/${runtimeMs}msec)\n`;
  if (d.clat.count > 0) {
    out += formatLatencyLine('clat', d.clat);
    out += formatPercentiles('clat', d.clat);
  }
  return out;
}

/** "0-3,8,10-11", the kernel's cpulist form. */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * One job's report, like fio's show_thread_status_normal. The first line ends where fio prints
 * "pid=N: <date>"; we print the vCPUs the job ran on instead ("cpus=0-3"), the nearest thing to a
 * pid a vCPU thread has. A direction is shown when it moved bytes, as in fio.
 */
export function formatJobReport(job: JobReport): string {
  checkRuntime(job.runtime_ms, `job "${job.name}"`);
  // fio shows the first error's errno; every failure we emulate is an I/O error, so EIO.
  const err = job.errors_total > 0 ? EIO : 0;
  const cpus = job.cpus.length > 0 ? ` cpus=${formatCpuList(job.cpus)}` : '';
  let out = `${job.name}: (groupid=${job.groupid}, jobs=${job.jobs}): err=${String(err).padStart(2)}:${cpus}\n`;
  if (job.runtime_ms > 0) {
    if (job.read !== undefined && job.read.bytes > 0) out += formatDirection('read', job.read, job.read.runtime_ms ?? job.runtime_ms);
    if (job.write !== undefined && job.write.bytes > 0) out += formatDirection('write', job.write, job.write.runtime_ms ?? job.runtime_ms);
  }
  // Our addition: fio prints "errors    : total=N, first_error=E/<text>" only with continue_on_error.
  if (job.errors_total > 0) {
    out += `  errors: ${job.errors_total}${job.first_error !== undefined ? ` (first: ${job.first_error})` : ''}\n`;
  }
  return out;
}

/**
 * "4096B-4096B", "4096B-64.0KiB" as fio shows a direction's block sizes: num2str of its smallest and
 * largest size (min_bs, max_bs), from the job-file form of JobReport.bs (a split's "/N" shares dropped).
 */
function formatBlockSizes(bs: string): string {
  const sizes = bs.split(/[:-]/).map((s) => parseSize(s.replace(/\/\d+$/, ''), 'bs'));
  const b = (n: number) => num2str(n, SIG_FIGS, true, 'B');
  return `${b(Math.min(...sizes))}-${b(Math.max(...sizes))}`;
}

/**
 * The line fio prints when a job starts: "name: (g=0): rw=randrw, bs=(R) 4096B-4096B, (W) ...,
 * ioengine=..., iodepth=N". Not part of the final report, but the same data. fio adds "(T) ..."
 * for trims, which the emulator has no size for.
 */
export function formatJobStartLine(job: JobReport): string {
  return `${job.name}: (g=${job.groupid}): rw=${job.rw}, bs=(R) ${formatBlockSizes(job.bs.read)}, (W) ${formatBlockSizes(job.bs.write)}, ` +
    `ioengine=${job.ioengine}, iodepth=${job.iodepth}\n`;
}

/**
 * The groups of a run from its job reports, as fio's sum_group_stats (stat.c) builds its
 * group_run_stats from the thread stats it prints: for each direction, every job that moved bytes
 * in it (fio sets a direction's runtime only then) counts with its own runtime and its own
 * bandwidth (bytes * 1000 / runtime, integer); the group keeps the least and largest of each and
 * the total bytes, and its aggregate bandwidth is the total over the largest runtime. The
 * aggregate is not over the span from the first start to the last end: a job that ran 114 ms in a
 * group whose other job ran 1091 ms reads min_run=114, and its direction's aggregate uses its own
 * 114 ms when it is the only job in that direction. Groups in order of groupid; `spanMs` gives
 * each group's runtime_ms (its span, which fio's lines do not use).
 */
export function groupStats(jobs: readonly JobReport[], spanMs: ReadonlyMap<number, number>): GroupReport[] {
  const groups = new Map<number, GroupReport>();
  for (const job of jobs) {
    checkRuntime(job.runtime_ms, `job "${job.name}"`);
    const g = groups.get(job.groupid) ?? { groupid: job.groupid, runtime_ms: spanMs.get(job.groupid) ?? 0 };
    groups.set(job.groupid, g);
    if (job.runtime_ms === 0) continue;
    for (const ddir of ['read', 'write'] as const) {
      const d = job[ddir];
      if (d === undefined || d.bytes === 0) continue;
      const run = d.runtime_ms ?? job.runtime_ms;
      checkRuntime(run, `job "${job.name}" ${ddir}`);
      if (run === 0) continue;
      const bw = perSecond(d.bytes, run);
      const acc = g[ddir];
      g[ddir] = acc === undefined
        ? { bytes: d.bytes, ios: d.ios, bw_bytes: 0, min_bw_bytes: bw, max_bw_bytes: bw, min_run_ms: run, max_run_ms: run }
        : {
          bytes: acc.bytes + d.bytes, ios: acc.ios + d.ios, bw_bytes: 0,
          min_bw_bytes: Math.min(acc.min_bw_bytes, bw), max_bw_bytes: Math.max(acc.max_bw_bytes, bw),
          min_run_ms: Math.min(acc.min_run_ms, run), max_run_ms: Math.max(acc.max_run_ms, run),
        };
    }
  }
  for (const g of groups.values()) {
    for (const d of [g.read, g.write]) if (d !== undefined) d.bw_bytes = perSecond(d.bytes, d.max_run_ms);
  }
  return [...groups.values()].sort((a, b) => a.groupid - b.groupid);
}

/**
 * "Run status group N (all jobs):" blocks, like fio's show_group_stats, each preceded by a blank
 * line as in fio: "bw=<agg> (<agg>), <min>-<max> (<min>-<max>), io=..., run=<min>-<max>msec".
 */
export function formatGroupStatus(groups: readonly GroupReport[]): string {
  let out = '';
  for (const g of groups) {
    out += `\nRun status group ${g.groupid} (all jobs):\n`;
    for (const [label, d] of [['   READ', g.read], ['  WRITE', g.write]] as const) {
      if (d === undefined) continue;
      checkRuntime(d.max_run_ms, `group ${g.groupid}`);
      const p2 = (n: number) => num2str(n, SIG_FIGS, true, 'B/s');
      const p10 = (n: number) => num2str(n, SIG_FIGS, false, 'B/s');
      out += `${label}: bw=${p2(d.bw_bytes)} (${p10(d.bw_bytes)}), ${p2(d.min_bw_bytes)}-${p2(d.max_bw_bytes)} (${p10(d.min_bw_bytes)}-${p10(d.max_bw_bytes)}), ` +
        `io=${num2str(d.bytes, SIG_FIGS, true, 'B')} (${num2str(d.bytes, SIG_FIGS, false, 'B')}), ` +
        `run=${d.min_run_ms}-${d.max_run_ms}msec\n`;
    }
  }
  return out;
}
