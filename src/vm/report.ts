// The run report: fio's per-job and per-group sections, then the swiotlb's own counters under their
// debugfs names. One plain document serves the text and the JSON output.
import { isAbsolute, relative } from 'node:path';
import type { AtomicPoolStats } from '../memory/atomic-pool.js';
import type { ChurnStats } from '../memory/churn.js';
import { type ZoneFree, formatBuddyinfo } from '../memory/phys.js';
import { type DirectionStats, type GroupReport, type JobReport, formatGroupStatus, formatJobReport, groupStats } from '../report/fio-report.js';
import { type HistogramSnapshot, LatencyHistogram } from '../report/histogram.js';
import { formatBytes, formatSizeExact } from '../util/units.js';
import type { FioBlockSize, FioJob } from '../workload/fio.js';
import {
  I_DROPS, I_END_MS, I_READ_BYTES, I_READ_ERRORS, I_READ_IOS, I_START_MS, I_UNWRITTEN, I_VERIFY_BAD, I_VERIFY_OK,
  I_POLLS, I_POLL_REAPED, I_REAPED_IN_WAIT, I_VERIFY_START_MS, I_WRITE_BYTES, I_WRITE_ERRORS, I_WRITE_IOS, INST_FIELDS, type JobInstance, onlyReads, verifyUnit,
  I_FILE_ACTIONS, I_SYNCS, I_TRIM_BYTES, I_TRIM_ERRORS, I_TRIM_IOS,
} from './jobs.js';
import { HIPRI_WITHOUT_POLL_QUEUES, type PollingReport, formatPolling } from './polling.js';
import { SECTOR_BYTES } from './verify.js';
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import type { DynamicLimits } from '../swiotlb/dynamic.js';
import type { GrowLimitStats } from '../swiotlb/grow-limit.js';
import { type PolicyReport, formatPolicy, policyReport } from './policy-report.js';
import { THROTTLE_TUNABLES, sumThrottleStats, throttleSysctlPath } from '../swiotlb/throttle.js';
import { type VmRunResult, areaContention, mergedHistogram, sumSwiotlbStats } from './vm.js';

// A type alias, not an interface, so that it fits the catalogue's open RunSummary record.
export type SwiotlbReport = {
  io_tlb_nslabs: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  io_tlb_transient_nslabs: number;
  nareas: number;
  /** Slots per area of the default pool, whose areas `areas` lists (io_tlb_nslabs grows with dynamic pools; this does not). */
  area_nslabs: number;
  map_attempts: number;
  map_failures: number;
  map_failures_by_cause: { full: number; oversize: number; no_pool: number; not_capable: number; throttle_aborted: number };
  unmaps: number;
  bytes_bounced_to_device: number;
  bytes_bounced_from_device: number;
  map_unmap_per_sec: number;
  /** Per area: lock counters, and used_hiwater, the area's high-water mark of area->used (of nslabs / nareas slots). */
  areas: { area: number; acquired: number; contended: number; parked: number; used_hiwater: number }[];
};

/** Completion latency of a set of requests, in microseconds. */
export type LatencySummary = { ios: number; avg_us: number; p50_us: number; p90_us: number; p99_us: number; p999_us: number; max_us: number };

/** [RFC] Throttling: the knobs, what happened, and the slop (§15.9) with the bound it is checked against. */
export type ThrottleReport = {
  enabled: boolean;
  high_throttle: number;
  low_throttle: number;
  high_throttle_count: number;
  low_throttle_count: number;
  /**
   * Increments the two counters lost: the RFC bumps them with a plain load and store, so two vCPUs
   * throttled at once can count as one. The exact per-thread counts less the counters; null when the
   * counters were written during the run (--tune), which makes the difference meaningless.
   */
  throttle_count_lost: number | null;
  /** The sysctl paths proposed in review, where the knobs would live. */
  paths: Record<string, string>;
  throttled: number;
  waits: number;
  wait_us_total: number;
  wait_us_max: number;
  wait_us: { p50: number; p90: number; p99: number; p999: number };
  queue_len_max: number;
  /**
   * Completion latency (submission to completion, the throttle wait included) of the storage requests
   * one of whose maps was throttled, and of the others: the price of throttling, from one run.
   */
  clat_throttled: LatencySummary;
  clat_unthrottled: LatencySummary;
  aborted: number;
  /** §15.9: waits on a semaphore held by the waiter's own vCPU's live mapping (a deadlock only if that mapping is never submitted). */
  waits_behind_own_mapping: number;
  used_slots_peak_throttled: number;
  slop: {
    /** MAY_BLOCK requests admitted without waiting, each checked for overshoot. */
    admitted: number;
    overshoots: number;
    overshoot_slots_max: number;
    /** The design's bound at the largest overshoot: own slots + other MAY_BLOCK + non-blocking allocations in its window. */
    bound_slots_at_max: number;
    own_slots_at_max: number;
    other_may_block_slots_at_max: number;
    non_block_slots_at_max: number;
    /** Overshoots above their bound: always 0 unless the accounting is broken. */
    bound_violations: number;
    overshoot_slots_histogram: { count: number; max: number; percentiles: { p: number; slots: number }[] };
  };
};

/**
 * verify= of a storage job. The counts are of units of unit_bytes (a 512-byte sector, or the job's
 * own unit, see jobs.ts verifyUnit), checked as they are read. not_verified: the job's data could
 * not be verified at all (unit_bytes 0), with why, and its I/Os that went unchecked.
 */
export type VerifyReport = {
  unit_bytes: number;
  sectors_ok: number;
  sectors_bad: number;
  sectors_unwritten: number;
  not_verified?: { reads: number; writes: number; reason: string };
};

export interface RunReport {
  jobs: (JobReport & { verify?: VerifyReport; packets_dropped: number; iolog?: IologReport })[];
  groups: GroupReport[];
  swiotlb: SwiotlbReport;
  throttle: ThrottleReport;
  /** Completion latency of every storage request (reads and writes of every job): one figure to compare runs by. */
  storage_clat: LatencySummary;
  /** Dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC); enabled false when it is off. */
  dynamic: DynamicReport;
  /** How each storage job's completions were reaped: by interrupt, or polled (hipri, polling.ts). */
  polling: PollingReport;
  /** The policy that ran (policy.ts) and its own figures (policy-report.ts). */
  policy: PolicyReport;
  /**
   * Restricted DMA pools (--restricted-pool), one per device: its own io_tlb_mem, whose maps and
   * counters `swiotlb` (io_tlb_default_mem's) does not include. Empty without the flag.
   */
  restricted_pools: RestrictedPoolReport[];
  /**
   * run_ms is emulated time (--time-scale K: wall / K), as every time and rate above; boot_ms, wall_ms,
   * cpu_ms (the process's CPU, all threads, boot to end) and cpu_boot_ms (of it, boot) are the host's.
   * device_passes: the device loops' passes (one clock read each). device_threads: each device
   * thread's commands, passes, its own CPU time (cpu_ms, the host's per-thread figure; null where the
   * host has none) and its life (life_ms, wall time from its start to its end), so that what a device
   * costs per second, busy or idle, is read from one run.
   */
  run: {
    vcpus: number; boot_ms: number; wall_ms: number; run_ms: number; interrupted: boolean; device_commands: number;
    device_passes: number; time_scale: number; cpu_ms: number; cpu_boot_ms: number; max_rss_bytes: number;
    device_threads: { name: string; commands: number; passes: number; cpu_ms: number | null; life_ms: number }[];
    /** ok; interrupted (Ctrl-C); failed (a thread crashed or the run stalled: `reason` says which). */
    status: RunStatus;
    /** The run did not finish: the counters are those reached when it stopped. */
    partial: boolean;
    reason?: string;
  };
  guest_memory: GuestMemoryReport;
}

export type RunStatus = 'ok' | 'interrupted' | 'failed';

/** What --fail-on-errors fails a run for: each kind of error the report counts, with its count. */
export function runErrors(rep: RunReport): { io_errors: number; packets_dropped: number; verify_bad_sectors: number } {
  let io = 0;
  let dropped = 0;
  let bad = 0;
  for (const j of rep.jobs) {
    io += j.errors_total;
    dropped += j.packets_dropped;
    bad += j.verify?.sectors_bad ?? 0;
  }
  return { io_errors: io, packets_dropped: dropped, verify_bad_sectors: bad };

}

/** Guest physical memory (src/memory): free blocks per order at the start and the end, the atomic pools. */
export interface GuestMemoryReport {
  /** /proc/buddyinfo as printed, once boot was done and at the end of the run. */
  buddyinfo_start: string;
  buddyinfo_end: string;
  free_start: ZoneFree[];
  free_end: ZoneFree[];
  /** allocPages calls that found no block (any caller). */
  alloc_failures: number;
  /** What the starting state (--buddyinfo, --fragmentation) could not apply as given. */
  notes: string[];
  atomic_pool: AtomicPoolStats;
  decrypted_arena: { capacity_bytes: number; used_bytes: number; carves: number; failures: number };
  /** --churn: the page-cache thread's work (null when off). */
  churn: ChurnStats | null;
}

/** One direction's block size in job-file form with exact values (JobReport.bs). */
function bsText(bs: FioBlockSize): string {
  if (bs.kind === 'fixed') return formatSizeExact(bs.bytes);
  if (bs.kind === 'range') return `${formatSizeExact(bs.minBytes)}-${formatSizeExact(bs.maxBytes)}`;
  return bs.entries.map((e) => `${formatSizeExact(e.bytes)}/${e.percent}`).join(':');
}

function verifyReport(job: FioJob, unitBytes: number, sum: (field: number) => number): VerifyReport {
  const v: VerifyReport = { unit_bytes: unitBytes, sectors_ok: sum(I_VERIFY_OK), sectors_bad: sum(I_VERIFY_BAD), sectors_unwritten: sum(I_UNWRITTEN) };
  if (unitBytes > 0 && onlyReads(job.rw) === false && !job.doVerify) {
    return { ...v, not_verified: { reads: 0, writes: sum(I_WRITE_IOS), reason: 'do_verify=0: a write-only job is not read back' } };
  }
  if (unitBytes > 0) return v;
  const why = verifyUnit(job);
  return { ...v, not_verified: { reads: sum(I_READ_IOS), writes: sum(I_WRITE_IOS), reason: 'why' in why ? why.why : 'not planned' } };
}

/**
 * read_iolog: what a replayed job's logs held besides its read and write lines: trims (NVMe
 * deallocate, each mapping a 16-byte range list), syncs (flushes, no data), file actions, and how it
 * was timed.
 */
export type IologReport = {
  logs: string[];
  version: 2 | 3;
  timing: 'timestamps' | 'waits' | 'none (replay_no_stall)';
  trims: { ios: number; bytes: number; errors: number };
  syncs: number;
  file_actions: number;
};

function iologText(l: IologReport): string {
  const trims = l.trims.ios + l.trims.errors > 0 ? `, trims=${l.trims.ios} (${formatBytes(l.trims.bytes)}${l.trims.errors > 0 ? `, ${l.trims.errors} failed` : ''})` : '';
  // Paths under the working directory are shown relative to it (the JSON keeps them absolute).
  const shown = l.logs.map((p) => {
    const rel = relative(process.cwd(), p);
    return rel.startsWith('..') || isAbsolute(rel) ? p : rel;
  });
  return `  iolog: ${shown.join(', ')} (v${l.version}, timing: ${l.timing})${trims}, syncs=${l.syncs}, file actions=${l.file_actions}`;
}

/** The report's verify line. */
function verifyText(v: VerifyReport): string {
  if (v.not_verified !== undefined) {
    const n = v.not_verified;
    return `  verify: not done (${n.reason}): ${n.reads} reads and ${n.writes} writes not verified`;
  }
  const what = v.unit_bytes === SECTOR_BYTES ? 'sectors' : `${v.unit_bytes}-byte blocks`;
  return `  verify: ${v.sectors_ok} ${what} ok, ${v.sectors_bad} bad, ${v.sectors_unwritten} never written`;
}

/** A restricted DMA pool's io_tlb_mem: its debugfs files (/sys/kernel/debug/swiotlb/<name>/), its one area, its maps. */
export type RestrictedPoolReport = {
  device: string;
  /** The reserved-memory node (rmem->name), also its debugfs directory under swiotlb/. */
  name: string;
  debugfs: string;
  start: number;
  bytes: number;
  io_tlb_nslabs: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  nareas: number;
  /** Its one area: area->used at the end and its high-water mark. */
  area_used: number;
  area_used_hiwater: number;
  /** Always false: can_grow is never set for a restricted pool (no growth, no transient pools). */
  can_grow: boolean;
  map_attempts: number;
  map_failures: number;
  map_failures_by_cause: { full: number; oversize: number; not_capable: number };
  unmaps: number;
  bytes_bounced_to_device: number;
  bytes_bounced_from_device: number;
};

function restrictedReports(r: VmRunResult, vcpus: number): RestrictedPoolReport[] {
  return r.boot.restricted.map((rp) => {
    const st = sumSwiotlbStats(new Float64Array(rp.stats), vcpus);
    const d = rp.mem.debugfs();
    const pool = rp.mem.defpool;
    const occ = pool.areaOccupancy();
    return {
      device: rp.device, name: rp.name, debugfs: `/sys/kernel/debug/swiotlb/${rp.name}`, start: pool.start, bytes: pool.nslabs * IO_TLB_SIZE,
      io_tlb_nslabs: d.io_tlb_nslabs, io_tlb_used: d.io_tlb_used, io_tlb_used_hiwater: d.io_tlb_used_hiwater, nareas: pool.nareas,
      area_used: occ.used[0]!, area_used_hiwater: occ.used_hiwater[0]!, can_grow: rp.mem.canGrow,
      map_attempts: st.map_attempts,
      map_failures: st.map_fail_full + st.map_fail_oversize + st.map_fail_no_pool + st.map_fail_not_capable + st.map_fail_throttle_aborted,
      map_failures_by_cause: { full: st.map_fail_full, oversize: st.map_fail_oversize, not_capable: st.map_fail_not_capable },
      unmaps: st.unmaps, bytes_bounced_to_device: st.bytes_to_device, bytes_bounced_from_device: st.bytes_from_device,
    };
  });
}

/** map_ok + unmaps of every restricted pool. */
function restrictedPairs(r: VmRunResult, vcpus: number): number {
  return r.boot.restricted.reduce((a, rp) => {
    const st = sumSwiotlbStats(new Float64Array(rp.stats), vcpus);
    return a + st.map_ok + st.unmaps;
  }, 0);
}

function formatRestricted(rps: readonly RestrictedPoolReport[]): string[] {
  return rps.flatMap((p) => [
    `  restricted DMA pool ${p.name} (${p.debugfs}), ${p.device} only: [mem 0x${p.start.toString(16)}] ${formatBytes(p.bytes)}, ${p.nareas} area, never grows`,
    `    io_tlb_nslabs=${p.io_tlb_nslabs}, io_tlb_used=${p.io_tlb_used}, io_tlb_used_hiwater=${p.io_tlb_used_hiwater} (${((100 * p.io_tlb_used_hiwater) / p.io_tlb_nslabs).toFixed(1)}%), area used_hiwater ${p.area_used_hiwater} of ${p.io_tlb_nslabs}`,
    `    maps: attempts=${p.map_attempts}, failures=${p.map_failures} (full=${p.map_failures_by_cause.full}, oversize=${p.map_failures_by_cause.oversize}), unmaps=${p.unmaps}; bounced: to device ${formatBytes(p.bytes_bounced_to_device)}, from device ${formatBytes(p.bytes_bounced_from_device)}`,
  ]);
}

/** The dynamic section: pools by kind, growth, transient pools, memory against the static pool it replaces. */
export type DynamicReport = {
  enabled: boolean;
  pools?: { default: { count: number; bytes: number }; dynamic: { count: number; bytes: number }; transient_live: { count: number; bytes: number } };
  /** Each dynamic pool: its size, address and when it was added (ms since boot). */
  pools_added?: { pool: number; nslabs: number; bytes: number; nareas: number; start: number; at_boot_ms: number }[];
  growth?: {
    runs: number; failed: number; scheduled: number; already_pending: number;
    attempts: { bytes: number; attempts: number; ok: number; failed: number }[];
    trigger_to_pool_ms_avg: number; trigger_to_pool_ms_max: number;
  };
  transient?: {
    created: number; peak: number; failed: number; live: number; freed: number; in_grace_period: number;
    failed_by_cause: { atomic_pool: number; table_full: number; alignment: number };
  };
  /** swiotlb memory: pools (default, dynamic, transient) at peak and at the end, against the static default pool. */
  memory?: { static_pool_bytes: number; in_use_peak_bytes: number; in_use_end_bytes: number; used_hiwater_bytes: number };
  limits?: DynamicLimits;
  /** [proposal] --grow-limit (grow-limit.ts): on default + dynamic pools; limit_bytes null without one. */
  grow_limit?: GrowLimitStats;
};

function dynamicReport(r: VmRunResult): DynamicReport {
  const dyn = r.boot.mem.dyn;
  if (dyn === null) return { enabled: false };
  const st = dyn.stats();
  const added = dyn.addedPools();
  const dynBytes = added.reduce((a, p) => a + p.nslabs * IO_TLB_SIZE, 0);
  const staticBytes = r.boot.nslabs * IO_TLB_SIZE;
  const d = r.boot.mem.debugfs();
  return {
    enabled: true,
    pools: {
      default: { count: 1, bytes: staticBytes }, dynamic: { count: added.length, bytes: dynBytes },
      transient_live: { count: st.transient_live, bytes: d.io_tlb_transient_nslabs * IO_TLB_SIZE },
    },
    pools_added: added.map((p) => ({ pool: p.pool, nslabs: p.nslabs, bytes: p.nslabs * IO_TLB_SIZE, nareas: p.nareas, start: p.start, at_boot_ms: p.at_ms })),
    growth: {
      runs: st.grow_runs, failed: st.grow_failed, scheduled: st.scheduled, already_pending: st.schedule_noop, attempts: st.attempts,
      trigger_to_pool_ms_avg: Math.round(st.trigger_to_pool_ms_avg * 1000) / 1000, trigger_to_pool_ms_max: Math.round(st.trigger_to_pool_ms_max * 1000) / 1000,
    },
    transient: {
      created: st.transient_created, peak: st.transient_peak, failed: st.transient_failed, live: st.transient_live, freed: st.transient_freed,
      in_grace_period: st.transient_retired,
      failed_by_cause: { atomic_pool: st.transient_fail_nomem, table_full: st.transient_fail_table, alignment: st.transient_fail_search },
    },
    memory: {
      static_pool_bytes: staticBytes, in_use_peak_bytes: st.pool_bytes_peak,
      in_use_end_bytes: d.io_tlb_nslabs * IO_TLB_SIZE + d.io_tlb_transient_nslabs * IO_TLB_SIZE, used_hiwater_bytes: d.io_tlb_used_hiwater * IO_TLB_SIZE,
    },
    limits: st.limits,
    grow_limit: st.grow_limit,
  };
}

function formatDynamic(dr: DynamicReport): string[] {
  if (!dr.enabled) return ['  dynamic swiotlb: off (--swiotlb-dynamic on to let the allocator grow)'];
  const p = dr.pools!;
  const g = dr.growth!;
  const t = dr.transient!;
  const m = dr.memory!;
  const lines = [
    `  dynamic swiotlb: pools default 1 (${formatBytes(p.default.bytes)}), dynamic ${p.dynamic.count} (${formatBytes(p.dynamic.bytes)}), transient live ${p.transient_live.count} (${formatBytes(p.transient_live.bytes)})`,
    `    growth: ${g.runs} runs, ${g.failed} failed ("Failed to allocate new pool"); attempts ${g.attempts.map((a) => `${formatBytes(a.bytes)} ${a.ok}/${a.attempts}`).join(', ')} (ok/tried); trigger to pool avg ${g.trigger_to_pool_ms_avg.toFixed(2)}ms max ${g.trigger_to_pool_ms_max.toFixed(2)}ms`,
    `    transient pools: created ${t.created}, peak ${t.peak}, failed ${t.failed} (atomic pool ${t.failed_by_cause.atomic_pool}, table full ${t.failed_by_cause.table_full}, alignment ${t.failed_by_cause.alignment}), freed ${t.freed}`,
    `    memory: swiotlb pools ${formatBytes(m.in_use_end_bytes)} at the end, ${formatBytes(m.in_use_peak_bytes)} at peak, against a static pool of ${formatBytes(m.static_pool_bytes)}; slots in use at peak ${formatBytes(m.used_hiwater_bytes)}`,
  ];
  const gl = dr.grow_limit!;
  if (gl.limit_bytes !== null) {
    lines.push(`    grow limit [proposal]: ${formatBytes(gl.limit_bytes)} on the default and dynamic pools (transient pools not counted), ${formatBytes(gl.committed_bytes)} committed; growths refused by it ${gl.refused}`);
  }
  const added = dr.pools_added!;
  if (added.length > 0) {
    const shown = added.slice(0, 8).map((a) => `${formatBytes(a.bytes)}@${(a.at_boot_ms / 1000).toFixed(2)}s`).join(', ');
    lines.push(`    pools added (size@time since boot): ${shown}${added.length > 8 ? `, ... ${added.length - 8} more` : ''}`);
  }
  return lines;
}

/** One entry of the report's job list: the clones fio sums into one thread_stat, named after the first's job. */
interface ReportingUnit {
  job: number;
  instances: JobInstance[];
}

/**
 * fio's __show_run_stats: clones (threads) in job-file order, each its own entry unless it sets
 * group_reporting and follows one of the same reporting group, then summed into that one (so
 * group_reporting joins a job's clones and the group's consecutive jobs that also set it).
 */
export function reportingUnits(jobs: readonly FioJob[], instances: readonly JobInstance[]): ReportingUnit[] {
  const units: ReportingUnit[] = [];
  let lastGroup = -1;
  for (const inst of instances) {
    const last = units.at(-1);
    if (last !== undefined && jobs[inst.job]!.groupReporting && inst.group === lastGroup) last.instances.push(inst);
    else units.push({ job: inst.job, instances: [inst] });
    lastGroup = inst.group;
  }
  return units;
}

/** The report of a run; `failure` (a crash or a stall) makes it a partial one, with the reason. */
export function buildReport(r: VmRunResult, vcpus: number, failure?: string): RunReport {
  const s = r.instanceStats;
  const at = (id: number, f: number) => s[id * INST_FIELDS + f]!;
  const firstErrors = new Map<number, string>();
  for (const v of r.vcpuResults) for (const [id, msg] of Object.entries(v.firstErrors)) firstErrors.set(Number(id), msg);
  const jobs: RunReport['jobs'] = [];
  const spans = new Map<number, { start: number; end: number }>();
  for (const unit of reportingUnits(r.jobs, r.plan.instances)) {
    const job = r.jobs[unit.job]!;
    const inst = unit.instances;
    const ids = inst.map((i) => i.id);
    const sum = (f: number) => ids.reduce((acc, id) => acc + at(id, f), 0);
    // Each clone's own runtime, rounded up to whole ms as fio's update_runtime does; a unit of several
    // (group_reporting) takes the largest (sum_thread_stats).
    const runtime = Math.max(1, ...ids.map((id) => Math.ceil(at(id, I_END_MS) - at(id, I_START_MS))));
    const span = spans.get(inst[0]!.group) ?? { start: Infinity, end: -Infinity };
    for (const id of ids) {
      span.start = Math.min(span.start, at(id, I_START_MS));
      span.end = Math.max(span.end, at(id, I_END_MS));
    }
    spans.set(inst[0]!.group, span);
    // fio's verify phase (a write-only job's read-back): the writes' runtime ends where it begins,
    // the reads' runtime is the phase (fio's update_runtime per direction).
    const phased = ids.some((id) => at(id, I_VERIFY_START_MS) > 0);
    const dirRuntime = (d: 'read' | 'write'): number => Math.max(1, ...ids.map((id) => {
      const v = at(id, I_VERIFY_START_MS);
      if (v === 0) return d === 'write' ? Math.ceil(at(id, I_END_MS) - at(id, I_START_MS)) : 0;
      return Math.ceil(d === 'write' ? v - at(id, I_START_MS) : at(id, I_END_MS) - v);
    }));
    const dir = (ios: number, bytes: number, errors: number, d: 'read' | 'write'): DirectionStats | undefined =>
      sum(ios) + sum(errors) === 0 ? undefined : {
        ios: sum(ios), bytes: sum(bytes), errors: sum(errors), clat: mergedHistogram(r.histograms, ids, d).snapshot(),
        ...(phased ? { runtime_ms: dirRuntime(d) } : {}),
      };
    const read = dir(I_READ_IOS, I_READ_BYTES, I_READ_ERRORS, 'read');
    const write = dir(I_WRITE_IOS, I_WRITE_BYTES, I_WRITE_ERRORS, 'write');
    const errors = sum(I_READ_ERRORS) + sum(I_WRITE_ERRORS) + sum(I_TRIM_ERRORS);
    const spec = inst[0]!.iolog;
    const iolog: IologReport | undefined = spec === undefined ? undefined : {
      logs: [...new Set(inst.map((i) => i.iolog!.path))], version: spec.version,
      timing: spec.replay.noStall ? 'none (replay_no_stall)' : spec.version === 3 ? 'timestamps' : 'waits',
      trims: { ios: sum(I_TRIM_IOS), bytes: sum(I_TRIM_BYTES), errors: sum(I_TRIM_ERRORS) },
      syncs: sum(I_SYNCS), file_actions: sum(I_FILE_ACTIONS),
    };
    const first = ids.map((id) => firstErrors.get(id)).find((m) => m !== undefined);
    const group = inst[0]!.group;
    jobs.push({
      name: job.name, groupid: group, jobs: inst.length, rw: spec !== undefined ? 'iolog' : job.rw, bs: { read: bsText(job.bs.read), write: bsText(job.bs.write) }, ioengine: job.ioengine,
      iodepth: job.iodepth, runtime_ms: runtime, ...(read ? { read } : {}), ...(write ? { write } : {}),
      errors_total: errors, ...(first !== undefined ? { first_error: first } : {}),
      cpus: [...new Set(inst.map((i) => i.cpu))].sort((a, b) => a - b),
      ...(job.verify !== 'none' && job.engine === 'storage' ? { verify: verifyReport(job, inst[0]!.verifyUnitBytes, sum) } : {}),
      packets_dropped: sum(I_DROPS),
      ...(iolog !== undefined ? { iolog } : {}),
    });
  }
  const groups = groupStats(jobs, new Map([...spans].map(([g, sp]) => [g, Math.max(1, Math.round(sp.end - sp.start))])));
  const st = sumSwiotlbStats(r.swiotlbStats, vcpus);
  const d = r.boot.mem.debugfs();
  const thr = throttleReport(r);
  const failures = st.map_fail_full + st.map_fail_oversize + st.map_fail_no_pool + st.map_fail_not_capable + st.map_fail_throttle_aborted;
  return {
    jobs,
    groups,
    swiotlb: {
      ...d,
      nareas: r.boot.nareas,
      area_nslabs: r.boot.mem.defpool.areaNslabs,
      map_attempts: st.map_attempts,
      map_failures: failures,
      map_failures_by_cause: {
        full: st.map_fail_full, oversize: st.map_fail_oversize, no_pool: st.map_fail_no_pool, not_capable: st.map_fail_not_capable,
        throttle_aborted: st.map_fail_throttle_aborted,
      },
      unmaps: st.unmaps,
      bytes_bounced_to_device: st.bytes_to_device,
      bytes_bounced_from_device: st.bytes_from_device,
      // The emulator's rate: every allocator's pairs (a restricted pool's maps are not in the counts above).
      map_unmap_per_sec: Math.round(((st.map_ok + st.unmaps + restrictedPairs(r, vcpus)) / 2 / r.runMs) * 1000),
      areas: areaContention(r.boot.mem),
    },
    throttle: thr,
    storage_clat: storageLatency(r, ['read', 'write']),
    dynamic: dynamicReport(r),
    polling: pollingReport(r, at),
    restricted_pools: restrictedReports(r, vcpus),
    policy: policyReport(r, thr),
    run: {
      vcpus, boot_ms: Math.round(r.bootMs), wall_ms: Math.round(r.wallMs), run_ms: Math.round(r.runMs), interrupted: r.interrupted,
      device_commands: r.deviceCommands, device_passes: r.devicePasses, time_scale: r.timeScale, cpu_ms: Math.round(r.cpuMs), cpu_boot_ms: Math.round(r.cpuBootMs),
      max_rss_bytes: r.maxRssBytes,
      device_threads: r.deviceThreads.map((d) => ({ name: d.name, commands: d.commands, passes: d.passes, cpu_ms: d.cpuMs === null ? null : Math.round(d.cpuMs * 10) / 10, life_ms: Math.round(d.lifeMs) })),
      status: failure !== undefined ? 'failed' : r.interrupted ? 'interrupted' : 'ok',
      partial: failure !== undefined || r.interrupted, ...(failure !== undefined ? { reason: failure } : {}),
    },
    guest_memory: {
      buddyinfo_start: formatBuddyinfo(r.boot.guest.startFree), buddyinfo_end: formatBuddyinfo(r.guestEnd.free),
      free_start: r.boot.guest.startFree, free_end: r.guestEnd.free, alloc_failures: r.boot.guest.phys.allocFailures(),
      notes: r.boot.guest.notes, atomic_pool: r.guestEnd.atomicPool, decrypted_arena: r.boot.guest.arena.stats(), churn: r.guestEnd.churn,
    },
  };
}

/** Per storage job: hipri, polled, and the completions reaped by polling or during throttle waits. */
function pollingReport(r: VmRunResult, at: (id: number, f: number) => number): PollingReport {
  const jobs: PollingReport['jobs'] = [];
  r.jobs.forEach((job, j) => {
    const inst = r.plan.instances.filter((i) => i.job === j && i.engine === 'storage');
    if (inst.length === 0) return;
    const sum = (f: number) => inst.reduce((acc, i) => acc + at(i.id, f), 0);
    jobs.push({
      name: job.name, hipri: job.hipri, polled: inst.some((i) => i.polled),
      polls: sum(I_POLLS), reaped_by_polling: sum(I_POLL_REAPED), reaped_in_throttle_wait: sum(I_REAPED_IN_WAIT),
    });
  });
  const unpolled = jobs.some((j) => j.hipri && !j.polled);
  return { nvme_poll_queues: r.nvmePollQueues, jobs, ...(unpolled ? { note: HIPRI_WITHOUT_POLL_QUEUES } : {}) };
}

const us = (ns: number): number => Math.round(ns / 1000);

/** Percentile `p` of a histogram snapshot (one of fio's list), in whole microseconds. */
function percentileUs(h: HistogramSnapshot, p: number): number {
  return us(h.percentiles.find((x) => x.p === p)?.value_ns ?? 0);
}

function throttleReport(r: VmRunResult): ThrottleReport {
  const t = sumThrottleStats(r.throttleStats);
  const thr = r.boot.mem.throttleSnapshot();
  const pct = (p: number) => percentileUs(t.wait_ns, p);
  const o = t.overshoot_slots;
  return {
    enabled: thr.enabled, high_throttle: thr.high_throttle, low_throttle: thr.low_throttle,
    high_throttle_count: thr.high_throttle_count, low_throttle_count: thr.low_throttle_count,
    throttle_count_lost: r.tuned.some((n) => n === 'high_throttle_count' || n === 'low_throttle_count')
      ? null : t.high_throttled + t.low_throttled - thr.high_throttle_count - thr.low_throttle_count,
    paths: Object.fromEntries(THROTTLE_TUNABLES.map((n) => [n, throttleSysctlPath(n)])),
    throttled: t.high_throttled + t.low_throttled, waits: t.waits, wait_us_total: us(t.wait_ns_total), wait_us_max: us(t.wait_ns_max),
    wait_us: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9) },
    queue_len_max: thr.queue_len_max,
    clat_throttled: storageLatency(r, 'throttled'), clat_unthrottled: storageLatency(r, 'unthrottled'),
    aborted: t.aborted, waits_behind_own_mapping: t.deadlocks, used_slots_peak_throttled: t.used_slots_peak_throttled,
    slop: {
      admitted: t.admitted, overshoots: t.overshoots, overshoot_slots_max: t.overshoot_slots_max,
      bound_slots_at_max: t.bound_slots_at_max, own_slots_at_max: t.own_slots_at_max,
      other_may_block_slots_at_max: t.other_may_block_slots_at_max, non_block_slots_at_max: t.non_block_slots_at_max,
      bound_violations: t.bound_violations,
      overshoot_slots_histogram: {
        count: o.count, max: Math.round(o.max_ns),
        percentiles: o.count === 0 ? [] : o.percentiles.map((x) => ({ p: x.p, slots: Math.round(x.value_ns) })),
      },
    },
  };
}

/** Completion latency of the storage requests in some histograms (both directions, or one [RFC] throttle split), merged over every storage instance. */
function storageLatency(r: VmRunResult, kind: 'throttled' | 'unthrottled' | ['read', 'write']): LatencySummary {
  const ids = r.plan.instances.filter((i) => i.engine === 'storage').map((i) => i.id);
  const merged = LatencyHistogram.create();
  for (const k of Array.isArray(kind) ? kind : [kind]) LatencyHistogram.merge(merged, mergedHistogram(r.histograms, ids, k));
  const h = merged.snapshot();
  const pct = (p: number) => percentileUs(h, p);
  return { ios: h.count, avg_us: us(h.mean_ns), p50_us: pct(50), p90_us: pct(90), p99_us: pct(99), p999_us: pct(99.9), max_us: us(h.max_ns) };
}

function latencyText(l: LatencySummary): string {
  const ms = (us: number) => `${(us / 1000).toFixed(2)}ms`;
  return l.ios === 0 ? '0 requests' : `${l.ios} requests, avg=${ms(l.avg_us)} p50=${ms(l.p50_us)} p99=${ms(l.p99_us)} max=${ms(l.max_us)}`;
}

function formatThrottle(t: ThrottleReport): string[] {
  if (!t.enabled) return ['  throttling: off (--throttle on to enable the MAY_BLOCK RFC)'];
  return [
    `  throttling [RFC]: high_throttle=${t.high_throttle}, low_throttle=${t.low_throttle}, high_throttle_count=${t.high_throttle_count}, low_throttle_count=${t.low_throttle_count}${t.throttle_count_lost ? ` (racy counters: ${t.throttle_count_lost} increments lost)` : ''}`,
    `    throttled=${t.throttled}, waits=${t.waits}, wait total=${(t.wait_us_total / 1000).toFixed(1)}ms max=${(t.wait_us_max / 1000).toFixed(2)}ms, p50=${t.wait_us.p50}us p90=${t.wait_us.p90}us p99=${t.wait_us.p99}us p99.9=${t.wait_us.p999}us, max queue=${t.queue_len_max}${t.aborted > 0 ? `, aborted=${t.aborted}` : ''}${t.waits_behind_own_mapping > 0 ? `, waits behind own mapping=${t.waits_behind_own_mapping}` : ''}`,
    `    completion latency: throttled ${latencyText(t.clat_throttled)}; unthrottled ${latencyText(t.clat_unthrottled)}`,
    `    slop: ${t.slop.overshoots} of ${t.slop.admitted} unthrottled MAY_BLOCK maps ended above high_throttle; largest overshoot ${t.slop.overshoot_slots_max} slots, bound ${t.slop.bound_slots_at_max} (own ${t.slop.own_slots_at_max} + other MAY_BLOCK ${t.slop.other_may_block_slots_at_max} + non-blocking ${t.slop.non_block_slots_at_max}), bound violations ${t.slop.bound_violations}`,
  ];
}

/** Areas listed one by one up to this many; beyond, the line names the fullest and counts the full ones. */
const AREAS_LISTED = 16;

/**
 * The per-area high-water marks: which area came closest to full. A map fails when the areas it
 * searches have no free run long enough, which can happen with one area full while the pool-wide
 * used_hiwater is well below io_tlb_nslabs.
 */
export function areaHiwaterLine(s: Pick<SwiotlbReport, 'area_nslabs' | 'areas'>): string | undefined {
  const marks = s.areas.map((a) => a.used_hiwater);
  if (marks.length === 0 || !marks.every((m) => typeof m === 'number')) return undefined; // a log from before the field
  // The default pool's own area size: io_tlb_nslabs / nareas would count dynamic pools' slots too.
  const per = s.area_nslabs;
  return `  area used_hiwater (of ${per} slots per area): ${areaHiwaterText(per, marks)}`;
}

/** The per-area marks in one phrase: each of them (up to AREAS_LISTED), the fullest and the emptiest, and which areas were full. */
export function areaHiwaterText(perArea: number, marks: readonly number[]): string {
  const max = Math.max(...marks);
  const full = marks.flatMap((m, a) => (m >= perArea ? [a] : []));
  const fullText = full.length === 0 ? 'no area was full'
    : full.length === marks.length ? 'every area was full at some time'
    : `${full.length === 1 ? 'area' : 'areas'} ${full.length <= AREAS_LISTED ? full.join(',') : `${full.slice(0, AREAS_LISTED).join(',')},... (${full.length})`} full at some time`;
  const list = marks.length <= AREAS_LISTED ? `[${marks.join(' ')}] ` : '';
  return `${list}max ${max} (area ${marks.indexOf(max)}), min ${Math.min(...marks)}; ${fullText}`;
}

/** The guest memory section: /proc/buddyinfo at the start and the end, the atomic pools, the arena. */
export function formatGuestMemory(g: GuestMemoryReport): string[] {
  const a = g.atomic_pool;
  const indent = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => `    ${l}`);
  return [
    '',
    'guest memory (/proc/buddyinfo: free blocks of order 0..10, 4 KiB << order):',
    '  at the start:', ...indent(g.buddyinfo_start),
    '  at the end:', ...indent(g.buddyinfo_end),
    ...g.notes.map((n) => `  note: ${n}`),
    `  page allocations that failed: ${g.alloc_failures}`,
    ...(g.churn !== null ? [`  churn: ${g.churn.allocs} pages allocated and ${g.churn.frees} freed (folios of order 0-3) at ${g.churn.rate_pages_per_s} pages/s (cache of at most ${g.churn.hold_pages} pages, ${g.churn.held_pages} held at the end), ${g.churn.failures} found no free block`] : []),
    `  atomic pools (/sys/kernel/debug/dma_pools): pool_size_dma=${a.pools.pool_size_dma}, pool_size_dma32=${a.pools.pool_size_dma32}, pool_size_kernel=${a.pools.pool_size_kernel}; atomic_pool_size ${formatBytes(a.atomic_pool_size)}, available ${formatBytes(a.avail)} of ${formatBytes(a.size)}, ${a.expansions} expansions (${a.expand_failures} failed), ${a.exhaustions} exhaustions`,
    `  decrypted arena: ${formatBytes(g.decrypted_arena.used_bytes)} of ${formatBytes(g.decrypted_arena.capacity_bytes)} used${g.decrypted_arena.failures > 0 ? `, ${g.decrypted_arena.failures} carves refused (arena full)` : ''}`,
  ];
}

export function formatReport(rep: RunReport): string {
  const out: string[] = [];
  if (rep.run.reason !== undefined) out.push(`PARTIAL REPORT: the run failed (${rep.run.reason}); the counters are those reached when it stopped`, '');
  for (const job of rep.jobs) {
    out.push(formatJobReport(job).trimEnd());
    if (job.verify) out.push(verifyText(job.verify));
    if (job.packets_dropped > 0) out.push(`  packets dropped: ${job.packets_dropped}`);
    if (job.iolog) out.push(iologText(job.iolog));
  }
  out.push(formatGroupStatus(rep.groups).trimEnd());
  const s = rep.swiotlb;
  const contended = s.areas.reduce((a, x) => a + x.contended, 0);
  const acquired = s.areas.reduce((a, x) => a + x.acquired, 0);
  const parked = s.areas.reduce((a, x) => a + x.parked, 0);
  const busiest = [...s.areas].sort((a, b) => b.contended - a.contended)[0];
  out.push('');
  out.push('swiotlb (/sys/kernel/debug/swiotlb):');
  out.push(`  io_tlb_nslabs=${s.io_tlb_nslabs} (${formatBytes(s.io_tlb_nslabs * IO_TLB_SIZE)}), io_tlb_used=${s.io_tlb_used}, io_tlb_used_hiwater=${s.io_tlb_used_hiwater} (${((100 * s.io_tlb_used_hiwater) / s.io_tlb_nslabs).toFixed(1)}%), io_tlb_transient_nslabs=${s.io_tlb_transient_nslabs}`);
  out.push(`  maps: attempts=${s.map_attempts}, failures=${s.map_failures} (full=${s.map_failures_by_cause.full}, oversize=${s.map_failures_by_cause.oversize}${s.map_failures_by_cause.throttle_aborted > 0 ? `, throttle aborted=${s.map_failures_by_cause.throttle_aborted}` : ''}), unmaps=${s.unmaps}`);
  out.push(`  bounced: to device ${formatBytes(s.bytes_bounced_to_device)}, from device ${formatBytes(s.bytes_bounced_from_device)}`);
  const hiwaterLine = areaHiwaterLine(s);
  if (hiwaterLine !== undefined) out.push(hiwaterLine);
  out.push(`  area locks: ${s.nareas} areas, ${acquired} acquisitions, ${contended} contended (${acquired > 0 ? ((100 * contended) / acquired).toFixed(2) : '0.00'}%), ${parked} parks${busiest && busiest.contended > 0 ? `; busiest area ${busiest.area} (${busiest.contended} contended)` : ''}`);
  out.push(...formatPolicy(rep.policy));
  out.push(...formatThrottle(rep.throttle));
  out.push(...formatDynamic(rep.dynamic));
  out.push(...formatPolling(rep.polling));
  out.push(...formatRestricted(rep.restricted_pools));
  out.push(`  emulator: ${s.map_unmap_per_sec.toLocaleString('en-US')} map+unmap pairs/s sustained`);
  out.push(...formatGuestMemory(rep.guest_memory));
  out.push('');
  const partial = rep.run.reason !== undefined ? ` (PARTIAL REPORT: the run failed: ${rep.run.reason})` : rep.run.interrupted ? ' (interrupted: partial report)' : '';
  out.push(`run: ${rep.run.vcpus} vCPUs, ${(rep.run.run_ms / 1000).toFixed(2)} s of I/O${rep.run.time_scale !== 1 ? ` (emulated, time scale ${rep.run.time_scale})` : ''}, ${(rep.run.wall_ms / 1000).toFixed(2)} s wall${partial}`);
  return out.join('\n') + '\n';
}
