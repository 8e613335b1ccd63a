// The run-log analyzer: one pass over the NDJSON records, constant memory whatever the log's length.
// What is kept grows with the run's *shape* (devices, sizes, areas), never with its length: counters,
// capped group tables, a log-scale histogram for throttle waits and a bucketed time series for the
// chart. Lines that are not run-log records are counted by reason and skipped.
import {
  EVENT_NAMES, LEVEL_VALUES, checkFields, isEventName,
  type BounceOverflowFields, type DoubleUnmapFields, type EventName, type IoErrorFields, type LevelName,
  type LogOverflowFields, type MapFailureFields, type PacketDroppedFields, type PoolCreatedFields, type RunConfig,
  type RunSummary, type SampleFields, type StallFields, type SwiotlbWarnFields, type ThrottleEndFields,
  type TunableChangedFields, type WorkerErrorFields,
} from '../log/events.js';
import { COUNTER_KINDS, type CounterKind } from './series.js';
import { LogHistogram, type Percentiles } from './histogram.js';
import { TimeSeries, type ChartData } from './series.js';

/** Caps on what is kept verbatim (the rest is counted). */
export const LIMITS = Object.freeze({
  bootLines: 64,
  pools: 64,
  groups: 10_000,
  areas: 4096,
  stalls: 50,
  tunables: 200,
  workerErrors: 50,
  listed: 50,
  skippedExamples: 5,
});

export type SkipReason = 'not JSON' | 'not an object' | 'not a pino record' | 'no event' | 'unknown event' | 'bad fields' | 'too long';

export interface SkippedExample {
  line: number;
  reason: SkipReason;
  detail: string;
}

/** When something happened: epoch ms as logged, and ms since the run started. */
export interface At {
  time: number;
  t_ms: number;
}

/**
 * An exact count of a ratelimited event (map failures, I/O errors, dropped packets). The records of
 * these events are ratelimited (10 per 5 s per vCPU), so they are examples of the message, not a
 * count: the count comes from the cumulative counters of the samples and the run_summary's totals.
 */
export interface ExactCount {
  /** The count: the run_summary's total, else the last sample's counter, else (an old log) the printed records plus the repeats they say were suppressed, a lower bound. */
  total: number;
  source: 'run_summary' | 'samples' | 'records';
  /** The last sample's counter: what had happened by that sample's time (null: no sample carries it). */
  sampled: number | null;
  /**
   * The first and the last sample intervals in which the counter rose: the events happened between
   * `from` and `to` (a sample interval apart). When the run_summary counts more than the last
   * sample, the last interval runs from the last sample to the end of the run.
   */
  first: { from: At; to: At } | null;
  last: { from: At; to: At } | null;
  /** Counted by the run_summary after the last sample. */
  after_last_sample: number;
  /** Sample intervals in which the counter rose, and the time they cover. */
  intervals: number;
  intervals_ms: number;
  /** Records printed (ratelimited examples of the message) and the repeats those records say were suppressed. */
  printed: number;
  suppressed: number;
}

export interface FailureGroup {
  device: string;
  size: number;
  count: number;
  first: At;
  last: At;
  dirs: Record<string, number>;
}

export interface ErrorGroup {
  device: string;
  /** op for io_error, dir for packet_dropped. */
  kind: string;
  reason: string;
  count: number;
  bytes: number;
  first: At;
  last: At;
}

export interface Analysis {
  input: {
    source: string;
    bytes: number;
    lines: number;
    records: number;
    skipped: number;
    skipped_by_reason: Partial<Record<SkipReason, number>>;
    skipped_examples: SkippedExample[];
    events: Record<EventName, number>;
    /** When each event that occurred first occurred (the earliest record of it). */
    first: Partial<Record<EventName, At>>;
    levels: Partial<Record<LevelName, number>>;
    /** Epoch ms of the run's start: the run_config record, else the first record. */
    run_start_time: number | null;
    first_time: number | null;
    last_time: number | null;
    duration_ms: number;
  };
  config: RunConfig | null;
  /** More than one run_config means several runs were concatenated (the first is shown). */
  config_records: number;
  boot: { lines: string[]; more: number };
  pools: { count: number; by_kind: Record<string, number>; list: Array<PoolCreatedFields & { at: At }>; more: number };
  timeline: {
    samples: number;
    sample_interval_ms: number | null;
    duration_ms: number;
    nslabs: number | null;
    max_nslabs: number | null;
    /**
     * io_tlb_nslabs at the start: the default pool's nslabs (its pool_created record), else the first
     * sample's. With max_nslabs (peak) and nslabs (end, the last sample) the pool size over time.
     */
    start_nslabs: number | null;
    /** Growths: the dynamic pools added (pool_created, kind dynamic), their slots and when (the first LIMITS.pools). */
    growths: { count: number; nslabs: number; list: At[]; more: number };
    /** io_tlb_transient_nslabs as sampled (slots in transient pools); null when the samples lack it. */
    transient_nslabs: { peak: number; peak_at: At; end: number } | null;
    peak_used: { value: number; pct_of_pool: number; at: At } | null;
    max_hiwater: number | null;
    mean_used: number | null;
    high_throttle: number | null;
    low_throttle: number | null;
    /** Time with used above each threshold (used > x, as the throttle decision compares). */
    time_above_ms: {
      low_throttle: number | null;
      high_throttle: number | null;
      pct50: number;
      pct90: number;
      /** Sampled time with at least one area of the default pool full (area.used = its nslabs / nareas). */
      area_full: number;
    };
    peak_throttle_queue_len: { value: number; at: At } | null;
    /**
     * Rates over the sampled time: the mean is the counter's change over the whole sampled span, the
     * max the largest change over one sample interval (from the samples' ios and bytes counters; from
     * their iops field in a log without them).
     */
    iops: { mean: number; max: number } | null;
    bw_bytes_per_s: { mean: number; max: number } | null;
    /** Peak area.used per area, in area order, as sampled. */
    area_peak_used: number[];
    /** Each area's exact high-water mark of area.used (the run_summary's, else the last sample's); [] when the log has none. */
    area_used_hiwater: number[];
    /** Slots per area of the default pool (nslabs / nareas), when known. */
    area_nslabs: number | null;
  };
  /** Exact counts (ExactCount); groups and by_device describe the printed records, examples of the message. */
  map_failures: ExactCount & { groups: FailureGroup[]; groups_dropped: number; by_device: Record<string, number> };
  throttle: {
    begins: number;
    waits: number;
    wait_us_total: number;
    wait_us: Percentiles;
    longest: (ThrottleEndFields & { at: At }) | null;
    by_reason: Record<string, number>;
    by_device: Record<string, { waits: number; wait_us_total: number; wait_us_max: number }>;
    /** throttle_begin records with no throttle_end (waits still open at the end of the log). */
    unfinished: number;
  };
  io_errors: ExactCount & { groups: ErrorGroup[]; groups_dropped: number };
  packet_drops: ExactCount & { groups: ErrorGroup[]; groups_dropped: number };
  stalls: { total: number; self_deadlocks: number; longest_parked_ms: number; list: Array<StallFields & { at: At }>; more: number };
  tunables: { total: number; list: Array<TunableChangedFields & { at: At }>; more: number };
  worker_errors: { total: number; fatal: number; list: Array<WorkerErrorFields & { at: At; level: string }>; more: number };
  double_unmaps: { total: number; by_device: Record<string, number>; list: Array<DoubleUnmapFields & { at: At }> };
  bounce_overflows: { total: number; by_device: Record<string, number>; list: Array<BounceOverflowFields & { at: At }> };
  /** swiotlb_warn records: counts by text, and the first ones in full. */
  warnings: { total: number; by_text: Record<string, number>; list: Array<SwiotlbWarnFields & { at: At }> };
  log_overflows: { records_dropped: number; by_source: Record<string, number> };
  summary: RunSummary | null;
}

export interface AnalyzerOptions {
  /** Names the input in the result (a path, or "stdin"). */
  source?: string;
  /** Points in the chart's time series. */
  chartPoints?: number;
}

const LEVEL_BY_VALUE = new Map<number, LevelName>(
  (Object.entries(LEVEL_VALUES) as Array<[LevelName | 'silent', number]>)
    .filter((e): e is [LevelName, number] => e[0] !== 'silent')
    .map(([k, v]) => [v, k]),
);

function inc(o: Record<string, number>, key: string, by = 1): void {
  o[key] = (o[key] ?? 0) + by;
}

/** Caps the number of distinct keys of a counting map; beyond it, counts go to "(other)". */
function incCapped(o: Record<string, number>, key: string, cap: number, by = 1): void {
  if (o[key] === undefined && Object.keys(o).length >= cap) key = '(other)';
  inc(o, key, by);
}

export class LogAnalyzer {
  private readonly source: string;
  private bytes = 0;
  private lines = 0;
  private records = 0;
  private skipped = 0;
  private readonly skippedByReason: Partial<Record<SkipReason, number>> = {};
  private readonly skippedExamples: SkippedExample[] = [];
  private readonly events = Object.fromEntries(EVENT_NAMES.map((e) => [e, 0])) as Record<EventName, number>;
  private readonly firstOf: Partial<Record<EventName, number>> = {};
  private readonly levels: Partial<Record<LevelName, number>> = {};
  private t0: number | null = null;
  /** The run's clock: the run_start record's time; for a log without one, the first sample's time less its t_ms; else run_config's time. */
  private runStartTime: number | null = null;
  private sampleZero: number | null = null;
  /** --time-scale K of the run (run_start): record times are wall clock, K times the run's clock. */
  private timeScale = 1;
  private configTime: number | null = null;
  private firstTime: number | null = null;
  private lastTime: number | null = null;

  private config: RunConfig | null = null;
  private configRecords = 0;
  private readonly bootLines: string[] = [];
  private bootMore = 0;
  private readonly pools: Array<PoolCreatedFields & { time: number }> = [];
  private poolCount = 0;
  private readonly poolKinds: Record<string, number> = {};

  // timeline
  private samples = 0;
  private prevTms: number | null = null;
  private intervalSum = 0;
  private intervals = 0;
  private nslabs: number | null = null;
  private maxNslabs: number | null = null;
  private startNslabs: number | null = null;
  private firstSampleNslabs: number | null = null;
  private growthCount = 0;
  private growthNslabs = 0;
  private readonly growthTimes: number[] = [];
  private transientPeak: { value: number; time: number } | null = null;
  private transientEnd = 0;
  private peakUsed: { value: number; nslabs: number; time: number } | null = null;
  private maxHiwater: number | null = null;
  private usedSum = 0;
  private high: number | null = null;
  private low: number | null = null;
  private aboveLow = 0;
  private aboveHigh = 0;
  private above50 = 0;
  private above90 = 0;
  private areaFull = 0;
  private areaNslabs: number | null = null;
  private sampledMs = 0;
  private throttleSeen = false;
  private peakQueue: { value: number; time: number } | null = null;
  private iopsSum = 0;
  private iopsMax = 0;
  private rateSpanMs = 0;
  private ios: number | null = null;
  private sampledBytes: number | null = null;
  private bytesRateMax: number | null = null;
  private bytesSince = 0;
  private iosSince = 0;
  private areaPeak: number[] = [];
  private areaHiwater: number[] = [];
  private readonly counters = Object.fromEntries(COUNTER_KINDS.map((k) => [k, new CounterTrack()])) as Record<CounterKind, CounterTrack>;
  private prevSampleTime: number | null = null;
  private lastSampleTime: number | null = null;
  private summaryTime: number | null = null;

  private mapFailuresPrinted = 0;
  private mapFailuresSuppressed = 0;
  private readonly failureGroups = new Map<string, { device: string; size: number; count: number; first: number; last: number; dirs: Record<string, number> }>();
  private failureGroupsDropped = 0;
  private readonly failuresByDevice: Record<string, number> = {};

  private throttleBegins = 0;
  private readonly waitHist = new LogHistogram();
  private longestWait: (ThrottleEndFields & { time: number }) | null = null;
  private readonly waitsByReason: Record<string, number> = {};
  private readonly waitsByDevice: Record<string, { waits: number; wait_us_total: number; wait_us_max: number }> = {};

  private readonly ioErrors = { total: 0, suppressed: 0, groups: new Map<string, ErrorGroupRaw>(), dropped: 0 };
  private readonly drops = { total: 0, suppressed: 0, groups: new Map<string, ErrorGroupRaw>(), dropped: 0 };

  private stallTotal = 0;
  private selfDeadlocks = 0;
  private longestParked = 0;
  private readonly stalls: Array<StallFields & { time: number }> = [];
  private tunableTotal = 0;
  private readonly tunables: Array<TunableChangedFields & { time: number }> = [];
  private workerErrorTotal = 0;
  private workerFatal = 0;
  private readonly workerErrors: Array<WorkerErrorFields & { time: number; level: string }> = [];
  private doubleUnmapTotal = 0;
  private readonly doubleUnmapByDevice: Record<string, number> = {};
  private readonly doubleUnmaps: Array<DoubleUnmapFields & { time: number }> = [];
  private overflowTotal = 0;
  private readonly overflowByDevice: Record<string, number> = {};
  private readonly overflows: Array<BounceOverflowFields & { time: number }> = [];
  private warnTotal = 0;
  private readonly warnByText: Record<string, number> = {};
  private readonly warns: Array<SwiotlbWarnFields & { time: number }> = [];
  private logDropped = 0;
  private readonly logDroppedBySource: Record<string, number> = {};
  private summary: RunSummary | null = null;

  private readonly series: TimeSeries;

  constructor(opts: AnalyzerOptions = {}) {
    this.source = opts.source ?? 'stdin';
    this.series = new TimeSeries(opts.chartPoints ?? 2000);
  }

  /** Bytes of input seen (for the report; the line splitter knows it). */
  setBytes(n: number): void {
    this.bytes = n;
  }

  /** A line that was too long to keep. */
  overlong(lineNo: number, bytes: number): void {
    this.lines = Math.max(this.lines, lineNo);
    this.skip(lineNo, 'too long', `${bytes} bytes`);
  }

  /** One line of input. */
  line(text: string, lineNo: number, terminated = true): void {
    this.lines = Math.max(this.lines, lineNo);
    // Blank lines are neither records nor errors.
    if (text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === '')) return;
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch {
      this.skip(lineNo, 'not JSON', terminated ? text.slice(0, 80) : `unterminated last line: ${text.slice(0, 60)}`);
      return;
    }
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
      this.skip(lineNo, 'not an object', text.slice(0, 80));
      return;
    }
    this.record(rec as Record<string, unknown>, lineNo, text);
  }

  private skip(lineNo: number, reason: SkipReason, detail: string): void {
    this.skipped++;
    this.skippedByReason[reason] = (this.skippedByReason[reason] ?? 0) + 1;
    if (this.skippedExamples.length < LIMITS.skippedExamples) this.skippedExamples.push({ line: lineNo, reason, detail });
  }

  private record(r: Record<string, unknown>, lineNo: number, text: string): void {
    const time = r['time'];
    const level = r['level'];
    if (typeof time !== 'number' || !Number.isFinite(time) || (typeof level !== 'number' && typeof level !== 'string')) {
      this.skip(lineNo, 'not a pino record', text.slice(0, 80));
      return;
    }
    const event = r['event'];
    if (typeof event !== 'string') {
      this.skip(lineNo, 'no event', text.slice(0, 80));
      return;
    }
    if (!isEventName(event)) {
      this.skip(lineNo, 'unknown event', event.slice(0, 80));
      return;
    }
    const bad = checkFields(event, r);
    if (bad !== undefined) {
      this.skip(lineNo, 'bad fields', bad);
      return;
    }
    this.records++;
    this.events[event]++;
    const seen = this.firstOf[event];
    if (seen === undefined || time < seen) this.firstOf[event] = time;
    const levelName = typeof level === 'number' ? LEVEL_BY_VALUE.get(level) : (level as LevelName);
    if (levelName !== undefined) this.levels[levelName] = (this.levels[levelName] ?? 0) + 1;
    if (this.t0 === null) this.t0 = time;
    if (this.firstTime === null || time < this.firstTime) this.firstTime = time;
    if (this.lastTime === null || time > this.lastTime) this.lastTime = time;
    const t = time - this.t0;
    // Each case trusts the fields checkRecord verified; optional ones are checked where read.
    switch (event) {
      case 'run_config':
        this.configRecords++;
        if (this.config === null) {
          this.config = r['config'] as RunConfig;
          this.configTime = time;
        }
        break;
      case 'run_start':
        if (this.runStartTime === null) {
          this.runStartTime = time;
          const k = r['time_scale'];
          if (typeof k === 'number' && Number.isFinite(k) && k >= 1) this.timeScale = k;
        }
        break;
      case 'boot_line':
        if (this.bootLines.length < LIMITS.bootLines) this.bootLines.push(String(r['text']));
        else this.bootMore++;
        break;
      case 'pool_created': {
        this.poolCount++;
        inc(this.poolKinds, String(r['kind']));
        const nslabs = r['nslabs'] as number;
        if (r['kind'] === 'default' && r['pool'] === 0 && this.startNslabs === null) this.startNslabs = nslabs;
        if (r['kind'] === 'dynamic') {
          // A growth: io_tlb_nslabs rises by the pool's nslabs (swiotlb_dyn_alloc adds it to mem->nslabs).
          this.growthCount++;
          this.growthNslabs += nslabs;
          if (this.growthTimes.length < LIMITS.pools) this.growthTimes.push(time);
          this.series.mark(t, 'growths');
        }
        if (this.pools.length < LIMITS.pools) {
          const f = r as unknown as PoolCreatedFields;
          // The default pool's: a restricted DMA pool is pool 0 of its own io_tlb_mem, and the samples' areas are not its.
          if (f.pool === 0 && f.kind === 'default' && f.nareas > 0) this.areaNslabs = Math.floor(f.nslabs / f.nareas);
          this.pools.push({ pool: f.pool, start: f.start, nslabs: f.nslabs, nareas: f.nareas, kind: f.kind, ...(typeof f.device === 'string' ? { device: f.device } : {}), time });
        }
        break;
      }
      case 'sample':
        this.sample(r as unknown as SampleFields, time, t);
        break;
      case 'map_failure': {
        const f = r as unknown as MapFailureFields;
        this.mapFailuresPrinted++;
        if (typeof f.suppressed === 'number' && f.suppressed > 0) this.mapFailuresSuppressed += f.suppressed;
        incCapped(this.failuresByDevice, f.device, LIMITS.groups);
        const key = `${f.device}\u0000${f.size}`;
        let g = this.failureGroups.get(key);
        if (g === undefined) {
          if (this.failureGroups.size >= LIMITS.groups) {
            this.failureGroupsDropped++;
          } else {
            g = { device: f.device, size: f.size, count: 0, first: time, last: time, dirs: {} };
            this.failureGroups.set(key, g);
          }
        }
        if (g !== undefined) {
          g.count++;
          if (time < g.first) g.first = time;
          if (time > g.last) g.last = time;
          inc(g.dirs, String(f.dir));
        }
        this.series.mark(t, 'mapFailures');
        break;
      }
      case 'throttle_begin':
        this.throttleBegins++;
        break;
      case 'throttle_end': {
        const f = r as unknown as ThrottleEndFields;
        this.waitHist.add(f.wait_us);
        if (this.longestWait === null || f.wait_us > this.longestWait.wait_us) {
          this.longestWait = { ...pick(f, ['vcpu', 'device', 'size', 'used', 'high_throttle', 'low_throttle', 'reason', 'queue_len', 'wait_us']), time } as ThrottleEndFields & { time: number };
        }
        inc(this.waitsByReason, String(f.reason));
        let d = this.waitsByDevice[f.device];
        if (d === undefined && Object.keys(this.waitsByDevice).length < LIMITS.groups) {
          d = { waits: 0, wait_us_total: 0, wait_us_max: 0 };
          this.waitsByDevice[f.device] = d;
        }
        if (d !== undefined) {
          d.waits++;
          d.wait_us_total += f.wait_us;
          if (f.wait_us > d.wait_us_max) d.wait_us_max = f.wait_us;
        }
        // Marked when the wait began: that is when the request was held up.
        this.series.mark(t - (f.wait_us / 1000) * this.timeScale, 'throttleWaits', f.wait_us);
        break;
      }
      case 'io_error': {
        const f = r as unknown as IoErrorFields;
        addErrorGroup(this.ioErrors, f.device, f.op, f.reason, f.size, time, r['suppressed']);
        this.series.mark(t, 'ioErrors');
        break;
      }
      case 'packet_dropped': {
        const f = r as unknown as PacketDroppedFields;
        addErrorGroup(this.drops, f.device, typeof f.dir === 'string' ? f.dir : '-', f.reason, f.size, time, r['suppressed']);
        this.series.mark(t, 'packetDrops');
        break;
      }
      case 'stall': {
        const f = r as unknown as StallFields;
        this.stallTotal++;
        if (f.kind === 'self_deadlock') this.selfDeadlocks++;
        if (f.parked_ms > this.longestParked) this.longestParked = f.parked_ms;
        if (this.stalls.length < LIMITS.stalls) {
          this.stalls.push({ holder: f.holder, waiters: f.waiters.slice(0, LIMITS.listed), parked_ms: f.parked_ms, ...(f.kind ? { kind: f.kind } : {}), time });
        }
        this.series.mark(t, 'stalls');
        break;
      }
      case 'tunable_changed': {
        this.tunableTotal++;
        if (this.tunables.length < LIMITS.tunables) {
          const f = r as unknown as TunableChangedFields;
          this.tunables.push({ name: f.name, old: f.old, new: f.new, time });
        }
        this.series.mark(t, 'tunables');
        break;
      }
      case 'worker_error': {
        const f = r as unknown as WorkerErrorFields;
        this.workerErrorTotal++;
        if (f.fatal) this.workerFatal++;
        if (this.workerErrors.length < LIMITS.workerErrors) {
          this.workerErrors.push({ ...pick(f, ['thread', 'vcpu', 'device', 'fatal', 'error']), time, level: levelName ?? String(level) } as WorkerErrorFields & { time: number; level: string });
        }
        break;
      }
      case 'double_unmap': {
        const f = r as unknown as DoubleUnmapFields;
        this.doubleUnmapTotal++;
        incCapped(this.doubleUnmapByDevice, f.device, LIMITS.groups);
        if (this.doubleUnmaps.length < LIMITS.listed) {
          this.doubleUnmaps.push({ device: f.device, vcpu: f.vcpu, tlb_addr: f.tlb_addr, ...(typeof f.size === 'number' ? { size: f.size } : {}), time });
        }
        break;
      }
      case 'bounce_overflow': {
        const f = r as unknown as BounceOverflowFields;
        this.overflowTotal++;
        incCapped(this.overflowByDevice, f.device, LIMITS.groups);
        if (this.overflows.length < LIMITS.listed) this.overflows.push({ device: f.device, vcpu: f.vcpu, alloc_size: f.alloc_size, mapping_size: f.mapping_size, time });
        break;
      }
      case 'swiotlb_warn': {
        const f = r as unknown as SwiotlbWarnFields;
        this.warnTotal++;
        incCapped(this.warnByText, f.text.slice(0, 200), LIMITS.listed);
        if (this.warns.length < LIMITS.listed) {
          this.warns.push({ text: f.text.slice(0, 200), ...(typeof f.device === 'string' ? { device: f.device } : {}), ...(typeof f.vcpu === 'number' ? { vcpu: f.vcpu } : {}), time });
        }
        break;
      }
      case 'log_overflow': {
        const f = r as unknown as LogOverflowFields;
        this.logDropped += f.dropped;
        incCapped(this.logDroppedBySource, f.source, LIMITS.groups, f.dropped);
        break;
      }
      case 'run_summary':
        this.summary = r['summary'] as RunSummary;
        this.summaryTime = time;
        break;
    }
  }

  private sample(s: SampleFields, time: number, t: number): void {
    this.samples++;
    if (this.sampleZero === null) this.sampleZero = time - s.t_ms * this.timeScale;
    const used = s.io_tlb_used;
    const nslabs = s.nslabs;
    // Each sample stands for the interval since the previous one (the first: since the run started).
    const dt = this.prevTms === null ? s.t_ms : s.t_ms - this.prevTms;
    if (this.prevTms !== null && dt > 0) {
      this.intervalSum += dt;
      this.intervals++;
    }
    this.prevTms = s.t_ms;
    const areas = s.area_used;
    const areaNslabs = this.areaNslabs ?? (areas.length > 0 ? Math.floor(nslabs / areas.length) : 0);
    if (dt > 0) {
      this.sampledMs += dt;
      if (s.high_throttle > 0 && used > s.high_throttle) this.aboveHigh += dt;
      if (s.low_throttle > 0 && used > s.low_throttle) this.aboveLow += dt;
      if (nslabs > 0) {
        if (used * 2 > nslabs) this.above50 += dt;
        if (used * 10 > nslabs * 9) this.above90 += dt;
      }
      if (areaNslabs > 0 && areas.some((v) => typeof v === 'number' && v >= areaNslabs)) this.areaFull += dt;
    }
    if (s.high_throttle > 0 || s.low_throttle > 0) this.throttleSeen = true;
    this.nslabs = nslabs;
    if (this.firstSampleNslabs === null) this.firstSampleNslabs = nslabs;
    const transient = s.io_tlb_transient_nslabs;
    if (typeof transient === 'number') {
      if (this.transientPeak === null || transient > this.transientPeak.value) this.transientPeak = { value: transient, time };
      this.transientEnd = transient;
    }
    if (this.maxNslabs === null || nslabs > this.maxNslabs) this.maxNslabs = nslabs;
    if (this.peakUsed === null || used > this.peakUsed.value) this.peakUsed = { value: used, nslabs, time };
    if (this.maxHiwater === null || s.io_tlb_used_hiwater > this.maxHiwater) this.maxHiwater = s.io_tlb_used_hiwater;
    this.usedSum += used;
    this.high = s.high_throttle;
    this.low = s.low_throttle;
    if (this.peakQueue === null || s.throttle_queue_len > this.peakQueue.value) this.peakQueue = { value: s.throttle_queue_len, time };
    // Rates: from the cumulative counters over the interval since the previous sample (the sample's
    // own iops field in a log without them; its rounding and its interval are the VM's).
    this.iopsSum += s.iops;
    const ios = typeof s.ios === 'number' ? s.ios : null;
    if (ios !== null && dt > 0) {
      const rate = ((ios - (this.ios ?? 0)) * 1000) / dt;
      if (rate > this.iopsMax) this.iopsMax = rate;
      this.iosSince = ios;
      this.rateSpanMs += dt;
    } else if (ios === null && s.iops > this.iopsMax) {
      this.iopsMax = s.iops;
    }
    if (ios !== null) this.ios = ios;
    const bytes = typeof s.bytes === 'number' ? s.bytes : null;
    if (bytes !== null && dt > 0) {
      const rate = ((bytes - (this.sampledBytes ?? 0)) * 1000) / dt;
      if (this.bytesRateMax === null || rate > this.bytesRateMax) this.bytesRateMax = rate;
      this.bytesSince = bytes;
    }
    if (bytes !== null) this.sampledBytes = bytes;
    for (let i = 0; i < areas.length && i < LIMITS.areas; i++) {
      const v = areas[i];
      if (typeof v === 'number' && !(v <= (this.areaPeak[i] ?? -1))) this.areaPeak[i] = v;
    }
    if (Array.isArray(s.area_used_hiwater)) this.areaHiwater = s.area_used_hiwater.slice(0, LIMITS.areas).map((v) => (typeof v === 'number' ? v : 0));
    // The exact counters of the ratelimited events: what rose in this interval, and when.
    const deltas: Partial<Record<CounterKind, number>> = {};
    for (const k of COUNTER_KINDS) {
      const v = s[k];
      if (typeof v !== 'number') continue;
      const d = this.counters[k].add(v, this.prevSampleTime ?? time - s.t_ms, time, dt);
      if (d > 0) deltas[k] = d;
    }
    this.prevSampleTime = time;
    this.lastSampleTime = time;
    this.series.addSample(t, used, s.io_tlb_used_hiwater, nslabs, typeof transient === 'number' ? transient : null, s.high_throttle, s.low_throttle, s.throttle_queue_len);
    if (dt > 0) this.series.addCounts(t, dt, deltas);
  }

  /** Epoch ms of the run's +0 (see runStartTime). */
  private zero(): number | null {
    return this.runStartTime ?? this.sampleZero ?? this.configTime ?? this.t0;
  }

  private at(time: number): At {
    const start = this.zero() ?? time;
    return { time, t_ms: (time - start) / this.timeScale };
  }

  /** The chart's time series (x in seconds since the run started). */
  chart(): ChartData {
    // Counters from the samples when the log has them, else the printed records (an older log).
    const fromCounters = Object.fromEntries(COUNTER_KINDS.map((k) => [k, this.counters[k].last !== null])) as Record<CounterKind, boolean>;
    const d = this.series.data(fromCounters);
    // Series times are relative to the first record; shift them to the run's start if that differs.
    const zero = this.zero();
    const shift = zero !== null && this.t0 !== null ? (this.t0 - zero) / 1000 : 0;
    if (shift !== 0 || this.timeScale !== 1) d.x_s = d.x_s.map((x) => (x + shift) / this.timeScale);
    d.bucket_ms /= this.timeScale;
    return d;
  }

  result(): Analysis {
    const at = (time: number): At => this.at(time);
    const groups = (m: Map<string, ErrorGroupRaw>): ErrorGroup[] =>
      [...m.values()].sort((a, b) => b.count - a.count).map((g) => ({ device: g.device, kind: g.kind, reason: g.reason, count: g.count, bytes: g.bytes, first: at(g.first), last: at(g.last) }));
    const start = this.zero() ?? this.firstTime;
    const totals = summaryTotals(this.summary);
    const exact = (k: CounterKind, printed: number, suppressed: number): ExactCount =>
      this.counters[k].result(totals[k], printed, suppressed, this.lastSampleTime, this.summaryTime, at);
    const summaryAreas = summaryAreaHiwater(this.summary);
    return {
      input: {
        source: this.source,
        bytes: this.bytes,
        lines: this.lines,
        records: this.records,
        skipped: this.skipped,
        skipped_by_reason: { ...this.skippedByReason },
        skipped_examples: [...this.skippedExamples],
        events: { ...this.events },
        first: Object.fromEntries(Object.entries(this.firstOf).map(([e, time]) => [e, this.at(time)])) as Partial<Record<EventName, At>>,
        levels: { ...this.levels },
        run_start_time: start,
        first_time: this.firstTime,
        last_time: this.lastTime,
        duration_ms: this.firstTime !== null && this.lastTime !== null ? this.lastTime - this.firstTime : 0,
      },
      config: this.config,
      config_records: this.configRecords,
      boot: { lines: [...this.bootLines], more: this.bootMore },
      pools: {
        count: this.poolCount,
        by_kind: { ...this.poolKinds },
        list: this.pools.map(({ time, ...p }) => ({ ...p, at: at(time) })),
        more: this.poolCount - this.pools.length,
      },
      timeline: {
        samples: this.samples,
        sample_interval_ms: this.intervals > 0 ? this.intervalSum / this.intervals : null,
        duration_ms: this.sampledMs,
        nslabs: this.nslabs,
        max_nslabs: this.maxNslabs,
        start_nslabs: this.startNslabs ?? this.firstSampleNslabs,
        growths: { count: this.growthCount, nslabs: this.growthNslabs, list: this.growthTimes.map(at), more: this.growthCount - this.growthTimes.length },
        transient_nslabs: this.transientPeak === null ? null : { peak: this.transientPeak.value, peak_at: at(this.transientPeak.time), end: this.transientEnd },
        peak_used: this.peakUsed === null ? null : {
          value: this.peakUsed.value,
          pct_of_pool: this.peakUsed.nslabs > 0 ? (100 * this.peakUsed.value) / this.peakUsed.nslabs : 0,
          at: at(this.peakUsed.time),
        },
        max_hiwater: this.maxHiwater,
        mean_used: this.samples > 0 ? this.usedSum / this.samples : null,
        high_throttle: this.high,
        low_throttle: this.low,
        time_above_ms: {
          low_throttle: this.throttleSeen ? this.aboveLow : null,
          high_throttle: this.throttleSeen ? this.aboveHigh : null,
          pct50: this.above50,
          pct90: this.above90,
          area_full: this.areaFull,
        },
        peak_throttle_queue_len: this.peakQueue === null ? null : { value: this.peakQueue.value, at: at(this.peakQueue.time) },
        iops: this.samples === 0 ? null : {
          mean: this.rateSpanMs > 0 ? (this.iosSince * 1000) / this.rateSpanMs : this.iopsSum / this.samples,
          max: this.iopsMax,
        },
        bw_bytes_per_s: this.bytesRateMax === null || this.rateSpanMs <= 0 ? null : { mean: (this.bytesSince * 1000) / this.rateSpanMs, max: this.bytesRateMax },
        area_peak_used: [...this.areaPeak],
        area_used_hiwater: summaryAreas ?? [...this.areaHiwater],
        area_nslabs: this.areaNslabs ?? (this.nslabs !== null && this.areaPeak.length > 0 ? Math.floor(this.nslabs / this.areaPeak.length) : null),
      },
      map_failures: {
        ...exact('map_failures', this.mapFailuresPrinted, this.mapFailuresSuppressed),
        groups: [...this.failureGroups.values()]
          .sort((a, b) => b.count - a.count || a.device.localeCompare(b.device) || a.size - b.size)
          .map((g) => ({ device: g.device, size: g.size, count: g.count, first: at(g.first), last: at(g.last), dirs: g.dirs })),
        groups_dropped: this.failureGroupsDropped,
        by_device: { ...this.failuresByDevice },
      },
      throttle: {
        begins: this.throttleBegins,
        waits: this.waitHist.count,
        wait_us_total: this.waitHist.sum,
        wait_us: this.waitHist.summary(),
        longest: this.longestWait === null ? null : (() => {
          const { time, ...w } = this.longestWait;
          return { ...w, at: at(time) };
        })(),
        by_reason: { ...this.waitsByReason },
        by_device: { ...this.waitsByDevice },
        unfinished: Math.max(0, this.throttleBegins - this.waitHist.count),
      },
      io_errors: { ...exact('io_errors', this.ioErrors.total, this.ioErrors.suppressed), groups: groups(this.ioErrors.groups), groups_dropped: this.ioErrors.dropped },
      packet_drops: { ...exact('packets_dropped', this.drops.total, this.drops.suppressed), groups: groups(this.drops.groups), groups_dropped: this.drops.dropped },
      stalls: {
        total: this.stallTotal,
        self_deadlocks: this.selfDeadlocks,
        longest_parked_ms: this.longestParked,
        list: this.stalls.map(({ time, ...s }) => ({ ...s, at: at(time) })),
        more: this.stallTotal - this.stalls.length,
      },
      tunables: {
        total: this.tunableTotal,
        list: this.tunables.map(({ time, ...s }) => ({ ...s, at: at(time) })),
        more: this.tunableTotal - this.tunables.length,
      },
      worker_errors: {
        total: this.workerErrorTotal,
        fatal: this.workerFatal,
        list: this.workerErrors.map(({ time, ...s }) => ({ ...s, at: at(time) })),
        more: this.workerErrorTotal - this.workerErrors.length,
      },
      double_unmaps: {
        total: this.doubleUnmapTotal,
        by_device: { ...this.doubleUnmapByDevice },
        list: this.doubleUnmaps.map(({ time, ...s }) => ({ ...s, at: at(time) })),
      },
      bounce_overflows: {
        total: this.overflowTotal,
        by_device: { ...this.overflowByDevice },
        list: this.overflows.map(({ time, ...s }) => ({ ...s, at: at(time) })),
      },
      warnings: {
        total: this.warnTotal,
        by_text: { ...this.warnByText },
        list: this.warns.map(({ time, ...w }) => ({ ...w, at: at(time) })),
      },
      log_overflows: { records_dropped: this.logDropped, by_source: { ...this.logDroppedBySource } },
      summary: this.summary,
    };
  }
}

interface ErrorGroupRaw {
  device: string;
  kind: string;
  reason: string;
  count: number;
  bytes: number;
  first: number;
  last: number;
}

function addErrorGroup(
  acc: { total: number; suppressed: number; groups: Map<string, ErrorGroupRaw>; dropped: number },
  device: string, kind: string, reason: string, size: number, time: number, suppressed: unknown,
): void {
  acc.total++;
  if (typeof suppressed === 'number' && suppressed > 0) acc.suppressed += suppressed;
  const key = `${device}\u0000${kind}\u0000${reason}`;
  let g = acc.groups.get(key);
  if (g === undefined) {
    if (acc.groups.size >= LIMITS.groups) {
      acc.dropped++;
      return;
    }
    g = { device, kind, reason: reason.slice(0, 200), count: 0, bytes: 0, first: time, last: time };
    acc.groups.set(key, g);
  }
  g.count++;
  g.bytes += size;
  if (time < g.first) g.first = time;
  if (time > g.last) g.last = time;
}

/** A copy of the named fields that are present (records may carry extra keys we do not keep). */
function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/**
 * One cumulative counter as the samples carry it: its last value, and the first and last sample
 * intervals in which it rose. Constant memory.
 */
class CounterTrack {
  last: number | null = null;
  private first: { from: number; to: number } | null = null;
  private lastRise: { from: number; to: number } | null = null;
  private intervals = 0;
  private intervalsMs = 0;

  /** A sample at `time` (the previous one at `from`, dtMs of run time before it) read `value`; returns the rise since the previous sample. */
  add(value: number, from: number, time: number, dtMs: number): number {
    const rise = value - (this.last ?? 0);
    this.last = value;
    if (rise <= 0) return 0;
    const span = { from, to: time };
    if (this.first === null) this.first = span;
    this.lastRise = span;
    this.intervals++;
    this.intervalsMs += Math.max(0, dtMs);
    return rise;
  }

  result(summaryTotal: number | undefined, printed: number, suppressed: number, lastSample: number | null, summaryTime: number | null,
    at: (t: number) => At): ExactCount {
    const sampled = this.last;
    const total = summaryTotal ?? sampled ?? printed + suppressed;
    const source: ExactCount['source'] = summaryTotal !== undefined ? 'run_summary' : sampled !== null ? 'samples' : 'records';
    const after = summaryTotal !== undefined && sampled !== null ? Math.max(0, summaryTotal - sampled) : 0;
    let first = this.first;
    let last = this.lastRise;
    // Counted after the last sample: they happened between it and the end of the run.
    if (after > 0 && lastSample !== null && summaryTime !== null) {
      last = { from: lastSample, to: summaryTime };
      if (first === null) first = last;
    }
    const span = (x: { from: number; to: number } | null) => (x === null ? null : { from: at(x.from), to: at(x.to) });
    return {
      total, source, sampled, first: span(first), last: span(last), after_last_sample: after,
      intervals: this.intervals, intervals_ms: this.intervalsMs, printed, suppressed,
    };
  }
}

/** The run_summary's exact totals of the counted events, where it has them in the VM's shape. */
function summaryTotals(summary: RunSummary | null): Partial<Record<CounterKind, number>> {
  const out: Partial<Record<CounterKind, number>> = {};
  if (summary === null) return out;
  const sw = (summary as Record<string, unknown>)['swiotlb'];
  if (sw !== null && typeof sw === 'object' && typeof (sw as Record<string, unknown>)['map_failures'] === 'number') {
    out.map_failures = (sw as Record<string, number>)['map_failures'];
    // The map_failure records and the samples' counter are of every allocator; `swiotlb` is the default
    // one's, and each restricted DMA pool (its own io_tlb_mem) reports its failures apart.
    const rps = (summary as Record<string, unknown>)['restricted_pools'];
    if (Array.isArray(rps)) {
      for (const p of rps) {
        const n = p !== null && typeof p === 'object' ? (p as Record<string, unknown>)['map_failures'] : undefined;
        if (typeof n === 'number') out.map_failures += n;
      }
    }
  }
  const jobs = (summary as Record<string, unknown>)['jobs'];
  if (Array.isArray(jobs) && jobs.length > 0 && jobs.every((j) => j !== null && typeof j === 'object')) {
    const sum = (key: string): number | undefined => {
      let n = 0;
      for (const j of jobs as Array<Record<string, unknown>>) {
        const v = j[key];
        if (typeof v !== 'number') return undefined;
        n += v;
      }
      return n;
    };
    const errors = sum('errors_total');
    const drops = sum('packets_dropped');
    // errors_total: requests that completed with an error (dropped packets are counted apart).
    if (errors !== undefined) out.io_errors = errors;
    if (drops !== undefined) out.packets_dropped = drops;
  }
  return out;
}

/** The run_summary's per-area used_hiwater, where it has them. */
function summaryAreaHiwater(summary: RunSummary | null): number[] | undefined {
  const sw = summary === null ? undefined : (summary as Record<string, unknown>)['swiotlb'];
  const areas = sw !== null && typeof sw === 'object' ? (sw as Record<string, unknown>)['areas'] : undefined;
  if (!Array.isArray(areas) || areas.length === 0) return undefined;
  const out: number[] = [];
  for (const a of areas.slice(0, LIMITS.areas)) {
    const v = a !== null && typeof a === 'object' ? (a as Record<string, unknown>)['used_hiwater'] : undefined;
    if (typeof v !== 'number') return undefined;
    out.push(v);
  }
  return out;
}
