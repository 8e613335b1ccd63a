// What a comparison compares: the figures of one run's report, and, over a configuration's repeats,
// each figure's median and spread. Pure arithmetic on result records (run.ts).
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import { type RunReport, runErrors } from '../vm/report.js';
import type { RunConfig, RunRecord } from './run.js';

export interface FigureSpec {
  name: string;
  /** Column header in the text table. */
  label: string;
  unit: 'count' | 'slots' | 'bytes' | 'iops' | 'bytes/s' | 'us';
  /** What it is, and where it comes from in the report. */
  help: string;
  /** The figure of one run's report; null when the run has no such figure (e.g. no storage I/O). */
  of(r: RunReport): number | null;
}

const ios = (r: RunReport): number => r.groups.reduce((s, g) => s + (g.read?.ios ?? 0) + (g.write?.ios ?? 0), 0);
const bytes = (r: RunReport): number => r.groups.reduce((s, g) => s + (g.read?.bytes ?? 0) + (g.write?.bytes ?? 0), 0);
// Groups run one after another (stonewall), so a rate over the whole run is totals over the groups' time.
const groupMs = (r: RunReport): number => r.groups.reduce((s, g) => s + g.runtime_ms, 0);
const lat = (r: RunReport, v: number): number | null => (r.storage_clat.ios === 0 ? null : v);

/** The dynamic swiotlb section of a report, where the build has one. */
type DynamicSection = { enabled: boolean; transient?: { failed: number }; memory?: { in_use_peak_bytes: number } };
const dyn = (r: RunReport): DynamicSection | undefined => (r as RunReport & { dynamic?: DynamicSection }).dynamic;

/** The figures of a comparison, in table order. */
export const FIGURES: readonly FigureSpec[] = [
  { name: 'map_failures', label: 'fail', unit: 'count', help: 'map failures, every cause (swiotlb.map_failures: what size --target failures= judges)', of: (r) => r.swiotlb.map_failures },
  { name: 'fail_full', label: 'full', unit: 'count', help: 'map failures: no free slots ("swiotlb buffer is full")', of: (r) => r.swiotlb.map_failures_by_cause.full },
  { name: 'fail_oversize', label: 'oversize', unit: 'count', help: 'map failures: larger than swiotlb_max_mapping_size, whatever the pool', of: (r) => r.swiotlb.map_failures_by_cause.oversize },
  { name: 'fail_throttle_aborted', label: 'thr.abort', unit: 'count', help: '[RFC] map failures: a throttle wait aborted (the stall watchdog)', of: (r) => r.swiotlb.map_failures_by_cause.throttle_aborted },
  {
    name: 'fail_transient', label: 'transient', unit: 'count', help: 'map failures: a transient pool could not be made (dynamic swiotlb\'s dynamic.transient.failed); null without dynamic swiotlb',
    of: (r) => { const d = dyn(r); return d?.enabled === true && d.transient !== undefined ? d.transient.failed : null; },
  },
  { name: 'io_errors', label: 'io_err', unit: 'count', help: 'I/O errors of every job', of: (r) => runErrors(r).io_errors },
  { name: 'packets_dropped', label: 'drops', unit: 'count', help: 'packets the NIC dropped', of: (r) => runErrors(r).packets_dropped },
  { name: 'hiwater', label: 'hiwater', unit: 'slots', help: 'io_tlb_used_hiwater at the end of the run', of: (r) => r.swiotlb.io_tlb_used_hiwater },
  {
    name: 'peak_bytes', label: 'peak mem', unit: 'bytes', help: 'peak swiotlb memory: with dynamic swiotlb every pool (default, dynamic, transient) at peak (dynamic.memory.in_use_peak_bytes), else the static pool',
    of: (r) => { const d = dyn(r); return d?.enabled === true && d.memory !== undefined ? d.memory.in_use_peak_bytes : r.swiotlb.io_tlb_nslabs * IO_TLB_SIZE; },
  },
  { name: 'iops', label: 'IOPS', unit: 'iops', help: 'I/Os completed per second (every group)', of: (r) => Math.round((ios(r) * 1000) / Math.max(1, groupMs(r))) },
  { name: 'bw', label: 'BW', unit: 'bytes/s', help: 'bytes moved per second (every group)', of: (r) => Math.round((bytes(r) * 1000) / Math.max(1, groupMs(r))) },
  { name: 'clat_p50', label: 'p50', unit: 'us', help: 'completion latency of the storage requests, median', of: (r) => lat(r, r.storage_clat.p50_us) },
  { name: 'clat_p99', label: 'p99', unit: 'us', help: 'completion latency of the storage requests, 99th percentile', of: (r) => lat(r, r.storage_clat.p99_us) },
  { name: 'clat_p999', label: 'p99.9', unit: 'us', help: 'completion latency of the storage requests, 99.9th percentile', of: (r) => lat(r, r.storage_clat.p999_us) },
  { name: 'throttle_wait_p99', label: 'wait p99', unit: 'us', help: '[RFC] throttle (and hybrid) wait, 99th percentile; null when the policy does not wait', of: (r) => (r.throttle.enabled ? r.throttle.wait_us.p99 : null) },
];

/** A figure over a configuration's repeats. spread = (max - min) / median: 0 when every repeat agrees; null when the median is 0 and they do not. */
export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  spread: number | null;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function spreadOf(xs: readonly number[]): Spread | null {
  if (xs.length === 0) return null;
  const med = median(xs);
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  return { n: xs.length, median: med, min, max, spread: max === min ? 0 : med === 0 ? null : (max - min) / med };
}

/** One configuration (a table row): its repeats' outcomes and each figure's spread over the runs that ended ok. */
export interface Row {
  key: string;
  config: Omit<RunConfig, 'repeat'>;
  repeats: number;
  ok: number;
  stalled: number;
  crashed: number;
  /** Reasons of the runs that did not end ok, one per run. */
  reasons: string[];
  /** Stalls over every repeat (a stalled run counts one, and the throttle watchdog's records). */
  stalls: number;
  figures: Record<string, Spread | null>;
}

/** Group records by configuration, in first-seen order, and reduce each figure to its spread. */
export function rows(records: readonly RunRecord[]): Row[] {
  const by = new Map<string, RunRecord[]>();
  for (const r of records) {
    const list = by.get(r.key) ?? [];
    list.push(r);
    by.set(r.key, list);
  }
  return [...by.entries()].map(([key, rs]) => {
    const { repeat: _repeat, ...config } = rs[0]!.config;
    const ok = rs.filter((r) => r.status === 'ok' && r.report !== undefined);
    const figures: Record<string, Spread | null> = {};
    for (const f of FIGURES) {
      const xs = ok.map((r) => f.of(r.report!)).filter((v): v is number => v !== null);
      figures[f.name] = spreadOf(xs);
    }
    return {
      key, config, repeats: rs.length, ok: ok.length, stalled: rs.filter((r) => r.status === 'stalled').length,
      crashed: rs.filter((r) => r.status === 'crashed' || r.status === 'input-error').length,
      reasons: rs.filter((r) => r.status !== 'ok').map((r) => `${r.status}: ${r.reason ?? ''}`),
      stalls: rs.reduce((s, r) => s + r.stalls, 0), figures,
    };
  });
}
