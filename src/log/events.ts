// The event catalogue: every record the emulator writes to its run log, in one place.
//
// Each event has a stable `event` name (what `jq 'select(.event=="map_failure")'` and the analyzer
// key on), one pino level, the TypeScript type of its fields, the fields a reader can rely on (checked
// by the analyzer at run time), and its message. Where the kernel prints a message for the same
// situation, `msg` is the kernel's wording (../shared/reference/linux-swiotlb.md §11), with the
// kernel's prefixes: "software IO TLB: " for swiotlb's pr_*() lines and "<device>: " for dev_*()
// lines, so the log can be grepped the way dmesg is.
//
// Levels, and why:
// - warn: a request did not get what it asked for but the emulator carries on, as the kernel's
//   dev_warn_ratelimited() does: map_failure, io_error, packet_dropped, bounce_overflow (a WARN_ONCE
//   in the kernel), swiotlb_warn (the other warn-once messages) and log_overflow (our own log lost
//   records).
// - error: something is stuck or broken: stall, double_unmap (a driver bug; dma-debug's err_printk),
//   worker_error (fatal when the thread could not continue, error otherwise), stress_failure (a check
//   of the race stress harness failed).
// - info: the story of the run: boot_line (all boot messages, including "Memory encryption is active
//   ...", which the kernel prints with pr_warn_once at the first bounce: here it is part of the boot
//   story, not a problem), pool_created, tunable_changed, run_config, run_summary,
//   throttle_end, sample, and stress_trial (one per trial of npm run stress). Samples are info, not debug, because the analyzer's timeline and the
//   HTML chart are built from them and the default level (COCO_LOG_LEVEL) is info; one sample per
//   COCO_SAMPLE_INTERVAL (250 ms) costs nothing worth saving.
// - debug: throttle_begin. A throttled request emits throttle_begin when it starts to wait and
//   throttle_end (info, carrying every field of the begin plus wait_us) when it is admitted, so at
//   the default level each wait is one record and nothing the analyzer needs is lost.
//
// Every record also carries pino's `level` (number) and `time` (epoch ms), and `msg`. Records that
// concern one vCPU or one device carry `vcpu` (number) and/or `device` (string) at the top level (a
// NIC is a device: packet_dropped names it in `device`); a stall names its parties in `holder` and
// `waiters`.
import { IO_TLB_SHIFT } from '../swiotlb/constants.js';

/** pino's level names, lowest first. */
export type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
/** A logger's threshold: a level, or 'silent' for nothing at all. */
export type LogLevelSetting = LevelName | 'silent';

/** pino's numeric levels, as they appear in the `level` field of every record. */
export const LEVEL_VALUES: Readonly<Record<LogLevelSetting, number>> = Object.freeze({
  trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity,
});

export const LOG_LEVEL_FORM = 'one of trace, debug, info, warn, error, fatal, silent';

/** True when `s` names a level a logger can be set to. */
export function isLogLevelSetting(s: string): s is LogLevelSetting {
  return Object.prototype.hasOwnProperty.call(LEVEL_VALUES, s);
}

/** The kernel's enum dma_data_direction, spelt as the kernel spells it. */
export type DmaDirection = 'DMA_BIDIRECTIONAL' | 'DMA_TO_DEVICE' | 'DMA_FROM_DEVICE' | 'DMA_NONE';
/** How a pool came to exist: the boot pool, a pool added by the grow worker, a one-mapping pool. */
export type PoolKind = 'default' | 'dynamic' | 'transient' | 'restricted';
/** Why a request was throttled (RFC §15.4): used > high_throttle, or used > low_throttle while held. */
export type ThrottleReason = 'high' | 'low';
/** Block request operations (the kernel's REQ_OP_*), as io_error reports them. */
export type BlockOp = 'read' | 'write' | 'flush' | 'discard';

// ------------------------------------------------------------------------------------------------
// Field types, one interface per event.

/** A kernel boot message, verbatim; see `bootText` for the ones the emulator prints. */
export interface BootLineFields {
  text: string;
}

/** An io_tlb_pool was added to the allocator (§4, §12). */
export interface PoolCreatedFields {
  pool: number;
  /** Emulated physical address of the pool's first slot. */
  start: number;
  nslabs: number;
  nareas: number;
  kind: PoolKind;
  device?: string;
  /** Dynamic pools: ms from the failed search that queued the growth work to the pool's insertion. */
  took_ms?: number;
}

/** Dynamic swiotlb: swiotlb_dyn_alloc could not allocate even IO_TLB_MIN_SLABS (its pr_warn_ratelimited). */
export interface GrowthFailedFields {
  /** Why the last attempt failed (no free block of the order, the arena or pool table full). */
  reason: string;
}

/** Dynamic swiotlb: a transient pool made for one mapping (swiotlb_find_slots), or its memory back in the atomic pool after the grace period. */
export interface TransientPoolFields {
  device: string;
  vcpu: number;
  start: number;
  nslabs: number;
}

/** No free slots: the kernel's "swiotlb buffer is full" warning (§11). */
export interface MapFailureFields {
  device: string;
  vcpu: number;
  /** The §5.2 size in bytes: what the message prints as sz. */
  size: number;
  dir: DmaDirection;
  /** mem->nslabs: slots in the allocator (dynamic pools included, transient pools not). */
  total: number;
  /** mem_used(): slots in use when the search failed. */
  used: number;
  /** Why: no free run of slots ('full', the default), larger than the largest mapping, or no pool at all. */
  cause?: 'full' | 'oversize' | 'no_pool' | 'throttle_aborted';
  /** Suppressed repeats since the last printed one (the kernel's ratelimit), when the VM counts them. */
  suppressed?: number;
}

/** A block request completed with an error (for us: its DMA mapping could not be made). */
export interface IoErrorFields {
  device: string;
  vcpu: number;
  op: BlockOp;
  /** Byte offset on the device; the message prints it as a 512-byte sector, as the kernel does. */
  offset: number;
  size: number;
  /** Why, e.g. "swiotlb buffer is full". */
  reason: string;
  phys_seg?: number;
}

/** A NIC dropped a packet because its buffer could not be mapped. `device` is the NIC's name. */
export interface PacketDroppedFields {
  device: string;
  vcpu: number;
  size: number;
  dir?: 'tx' | 'rx';
  reason: string;
}

/** A MAY_BLOCK request starts to wait on throttle_sem (RFC §15.4 step 5). */
export interface ThrottleBeginFields {
  vcpu: number;
  device: string;
  size: number;
  /** total_used read by the throttle decision, in slots. */
  used: number;
  high_throttle: number;
  low_throttle: number;
  reason: ThrottleReason;
  /** Waiters already queued when this one joined, when known. */
  queue_len?: number;
}

/** The waiting request was admitted (it now holds throttle_sem). */
export interface ThrottleEndFields extends ThrottleBeginFields {
  wait_us: number;
  /** [proposal] hybrid: the wait reached --hybrid-timeout and the map did not get throttle_sem (it grows the pool). */
  timed_out?: boolean;
}

/** One party to a stall: the mapping that holds throttle_sem, or a request parked behind it. */
export interface StallParty {
  vcpu: number;
  device: string;
  size: number;
  /** How long this waiter has been parked (waiters only). */
  waited_ms?: number;
}

/** The watchdog found throttle waiters parked too long behind one holder (RFC §15.9). */
export interface StallFields {
  holder: StallParty;
  waiters: StallParty[];
  /** How long the longest waiter has been parked. */
  parked_ms: number;
  /** 'self_deadlock': the holder's own submitter is among the waiters (§15.9); else 'timeout'. */
  kind?: 'timeout' | 'self_deadlock';
  /** NVMe poll queues (src/vm/polling.ts): completions posted and not reaped, and whether their vCPU is parked. */
  polled_queues?: { vcpu: number; device: string; posted_unreaped: number; parked_in_throttle_wait: boolean }[];
}

/** A tunable was changed during the run. `name` is the proposed sysctl path (RFC §15.8). */
export interface TunableChangedFields {
  /** e.g. /proc/sys/kernel/dma/swiotlb_default/high_throttle */
  name: string;
  old: number | string;
  new: number | string;
}

/**
 * Periodic sample of the allocator and the workload, every COCO_SAMPLE_INTERVAL, all read at one
 * instant. Counters are cumulative since the start barrier (the exact counts: the map_failure,
 * io_error and packet_dropped records are ratelimited examples); rates are over the interval since
 * the previous sample's counters.
 */
export interface SampleFields {
  /** Milliseconds since the run started (the start barrier: the run_start record). */
  t_ms: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  /** mem->nslabs (io_tlb_nslabs): the pool size in slots, growing with dynamic pools. */
  nslabs: number;
  /** area.used for each area of the default pool, in area order. */
  area_used: number[];
  /** Each area's high-water mark of area.used (the default pool), in area order. */
  area_used_hiwater?: number[];
  /** Requests parked on throttle_sem right now. */
  throttle_queue_len: number;
  /** Completed I/Os per second over the last interval, all devices. */
  iops: number;
  high_throttle: number;
  low_throttle: number;
  // Optional: filled when the VM knows them.
  /** The run's phase: startdelay, ramp, running or teardown (src/vm/run-state.ts). */
  phase?: string;
  io_tlb_transient_nslabs?: number;
  high_throttle_count?: number;
  low_throttle_count?: number;
  /** throttle_sem is held (count 0). */
  throttle_held?: boolean;
  map_ok?: number;
  /** Failed maps, all causes, since the run started (every allocator's: the default one and each restricted pool). */
  map_failures?: number;
  /** Restricted DMA pools (--restricted-pool): each one's own io_tlb_mem, by device; the fields above are the default allocator's. */
  restricted?: { device: string; io_tlb_nslabs: number; io_tlb_used: number; io_tlb_used_hiwater: number; map_failures: number }[];
  /** Storage requests completed with an error since the run started. */
  io_errors?: number;
  /** Packets the NIC dropped since the run started. */
  packets_dropped?: number;
  bytes_bounced?: number;
  /** Bytes the completed I/Os moved since the run started. */
  bytes?: number;
  /** Bytes per second moved by all devices over the last interval. */
  bw_bytes_per_s?: number;
  /** Per-device IOPS over the last interval. */
  iops_by_device?: Record<string, number>;
  /** Per-pool used slots, when there is more than one pool. */
  pool_used?: number[];
  /** I/Os completed since the run started. */
  ios?: number;
}

/** Every vCPU is at the start barrier and released: the run's clock starts at this record's time. */
export interface RunStartFields {
  /** From the start of boot to the barrier. */
  boot_ms: number;
  vcpus?: number;
  /**
   * --time-scale K: the run's clock (samples' t_ms, tunables, the report) runs K times slower than
   * the records' `time` (wall clock); a time since this record is (time - its time) / K of run time.
   */
  time_scale?: number;
}

/** One emulated device, as run_config describes it. */
export interface DeviceConfig {
  name: string;
  kind: 'nvme' | 'nic' | string;
  [key: string]: unknown;
}

/** The run's configuration. The known keys are typed; anything else the VM adds is printed as is. */
export interface RunConfig {
  vcpus?: number;
  mem_bytes?: number;
  swiotlb_bytes?: number;
  nslabs?: number;
  nareas?: number;
  cmdline?: string;
  runtime_ms?: number;
  seed?: number;
  sample_interval_ms?: number;
  log_level?: string;
  throttle?: { enabled: boolean; high_throttle?: number; low_throttle?: number };
  devices?: DeviceConfig[];
  [key: string]: unknown;
}

export interface RunConfigFields {
  config: RunConfig;
}

/** Latency summary in microseconds, fio style. */
export interface LatencySummary {
  min?: number;
  mean?: number;
  p50?: number;
  p90?: number;
  p99?: number;
  p999?: number;
  max?: number;
  [key: string]: number | undefined;
}

/** One job (fio's sense) in the final report. */
export interface JobSummary {
  name: string;
  device?: string;
  rw?: string;
  bs_bytes?: number;
  iodepth?: number;
  ios?: number;
  bytes?: number;
  iops?: number;
  bw_bytes_per_s?: number;
  errors?: number;
  lat_us?: LatencySummary;
  [key: string]: unknown;
}

/** The final report, as the VM prints it. */
export interface RunSummary {
  status?: 'ok' | 'error' | 'interrupted' | string;
  runtime_ms?: number;
  /** Flat JobSummary rows, or the VM's own richer per-job records (the analyzer tells them apart). */
  jobs?: readonly (JobSummary | object)[];
  swiotlb?: {
    nslabs?: number;
    used_hiwater?: number;
    map_ok?: number;
    map_failures?: number;
    bytes_bounced?: number;
    high_throttle_count?: number;
    low_throttle_count?: number;
    throttle_wait_us_total?: number;
    stalls?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface RunSummaryFields {
  summary: RunSummary;
}

/** A thread (vCPU, device or main) failed. */
export interface WorkerErrorFields {
  /** The thread's name: "vcpu3", "nvme0", "main". */
  thread: string;
  vcpu?: number;
  device?: string;
  /** The thread could not continue: logged at fatal instead of error. */
  fatal: boolean;
  error: { name: string; message: string; code?: string; stack?: string };
}

/** An unmap of an address that holds no live mapping (dma-debug's wording). */
export interface DoubleUnmapFields {
  device: string;
  vcpu: number;
  /** The bounce-buffer address passed to unmap. */
  tlb_addr: number;
  size?: number;
}

/** A warn-once message of swiotlb (§11) other than the ones with their own event. */
export interface SwiotlbWarnFields {
  /** The kernel's text without prefix, e.g. "Alloc alignment may prevent fulfilling requests with max mapping_size". */
  text: string;
  /** The device, for the kernel's dev_WARN_ONCE messages; absent for its pr_warn_once ones. */
  device?: string;
  vcpu?: number;
}

/** A sync or unmap asked for more than the allocation holds (§7): the kernel's WARN_ONCE. */
export interface BounceOverflowFields {
  device: string;
  vcpu: number;
  alloc_size: number;
  mapping_size: number;
}

/** A worker's log ring stayed full past its wait limit, so records were dropped (counted here). */
export interface LogOverflowFields {
  /** The channel's name: "vcpu3", "nvme0". */
  source: string;
  dropped: number;
  vcpu?: number;
  device?: string;
}

/** One trial of the race stress harness (npm run stress), when it ends. */
export interface StressTrialFields {
  /** The trial's number in its run. */
  trial: number;
  /** The trial's seed: `npm run stress -- --replay <seed> --mode <mode>` runs it again. */
  seed: number;
  mode: 'chaos' | 'pct';
  /** The deliberately broken variant of the core the trial ran, if any. */
  mutant?: string;
  vcpus: number;
  nslabs: number;
  nareas: number;
  /** Map attempts plus unmaps. */
  ops: number;
  maps?: number;
  map_failures?: number;
  /** chaos: perturbations inserted at instrumentation points; pct: turns moved between threads. */
  perturbations: number;
  duration_ms: number;
  /** No check failed. */
  ok: boolean;
  /** Broken checks. */
  failures: number;
  /** pct: scheduling steps and the hash of the schedule (equal across replays of one seed). */
  pct_steps?: number;
  pct_trace?: number;
  /** [RFC] Throttling was on; maps that came back flagged throttled; waits on throttle_sem. */
  throttle?: boolean;
  throttled_maps?: number;
  throttle_waits?: number;
  /** Dynamic swiotlb was on; pools the growth worker added, growths that failed, transient pools made and not made, atomic-pool exhaustions. */
  dynamic?: boolean;
  pools_added?: number;
  grow_failed?: number;
  transient_created?: number;
  transient_failed?: number;
  atomic_exhaustions?: number;
}

/** A stress trial in which a check failed: what broke, the configuration and how to replay it. */
export interface StressFailureFields {
  trial: number;
  seed: number;
  mode: 'chaos' | 'pct';
  mutant?: string;
  /** The first broken check. */
  check: string;
  /** Every broken check, one line each. */
  failures: string[];
  /** The trial's configuration. */
  config: Record<string, unknown>;
  /** The command that replays the trial. */
  replay: string;
}

// ---- guest physical memory and the atomic DMA pool (src/memory) ----

/** atomic_pool_work_fn added a chunk to an atomic pool (the kernel prints nothing for it). */
export interface AtomicPoolExpandedFields {
  /** The pool's gfp as %pGg prints it: "GFP_KERNEL", "GFP_KERNEL|GFP_DMA32", "GFP_KERNEL|GFP_DMA". */
  pool: string;
  /** The chunk: its bytes and physical address. */
  bytes: number;
  phys: number;
  /** The pool's size (gen_pool_size) after the chunk. */
  size: number;
}

/** dma_alloc_from_pool found no room in any atomic pool. */
export interface AtomicPoolExhaustedFields {
  device: string;
  size: number;
  vcpu?: number;
  /** The kernel's WARN text, when it prints one ("DMA pool exhausted for %s" without __GFP_NOWARN). */
  text?: string;
}

/** Every event name and the type of its fields. */
export interface EventFields {
  boot_line: BootLineFields;
  pool_created: PoolCreatedFields;
  growth_failed: GrowthFailedFields;
  transient_created: TransientPoolFields;
  transient_freed: TransientPoolFields;
  map_failure: MapFailureFields;
  io_error: IoErrorFields;
  packet_dropped: PacketDroppedFields;
  throttle_begin: ThrottleBeginFields;
  throttle_end: ThrottleEndFields;
  stall: StallFields;
  tunable_changed: TunableChangedFields;
  sample: SampleFields;
  run_start: RunStartFields;
  run_config: RunConfigFields;
  run_summary: RunSummaryFields;
  worker_error: WorkerErrorFields;
  double_unmap: DoubleUnmapFields;
  bounce_overflow: BounceOverflowFields;
  swiotlb_warn: SwiotlbWarnFields;
  log_overflow: LogOverflowFields;
  stress_trial: StressTrialFields;
  stress_failure: StressFailureFields;
  atomic_pool_expanded: AtomicPoolExpandedFields;
  atomic_pool_exhausted: AtomicPoolExhaustedFields;
}

export type EventName = keyof EventFields;

/** The shape of a field, as the analyzer checks it in records it reads back. */
export type FieldKind = 'string' | 'number' | 'boolean' | 'object' | 'array';

export interface EventSpec<E extends EventName> {
  /** The level of every record of this event (unless `levelOf` says otherwise). */
  readonly level: LevelName;
  /** A per-record level, for events whose severity depends on a field. */
  readonly levelOf?: (f: EventFields[E]) => LevelName;
  /** What the event means, for docs and --help. */
  readonly doc: string;
  /** Fields every record of this event carries, and their kinds (checked when reading logs). */
  readonly required: { readonly [K in keyof EventFields[E]]?: FieldKind };
  /** The `msg` of the record. */
  readonly message: (f: EventFields[E]) => string;
}

/** `0x` and 16 hex digits: how the kernel's %pa prints a phys_addr_t on 64-bit. */
export function formatPhysAddr(addr: number): string {
  return `0x${Math.max(0, Math.floor(addr)).toString(16).padStart(16, '0')}`;
}

const BLOCK_OP_CODE: Readonly<Record<BlockOp, number>> = { read: 0, write: 1, flush: 2, discard: 3 };

/**
 * The boot messages the emulator prints, in the kernel's words (§11). `boot_line` records carry the
 * whole line; these build it.
 */
export const bootText = {
  /** swiotlb_adjust_nareas / swiotlb_init_remap */
  areaNum: (nareas: number): string => `software IO TLB: area num ${nareas}.`,
  /** swiotlb_print_info: the default pool's range and size. */
  mapped: (start: number, nslabs: number): string =>
    `software IO TLB: mapped [mem ${formatPhysAddr(start)}-${formatPhysAddr(start + nslabs * 2 ** IO_TLB_SHIFT)}] (${Math.floor((nslabs * 2 ** IO_TLB_SHIFT) / 2 ** 20)}MB)`,
  roundup: (mb: number): string => `software IO TLB: SWIOTLB bounce buffer size roundup to ${mb}MB`,
  adjustedMb: (mb: number): string => `software IO TLB: SWIOTLB bounce buffer size adjusted to ${mb}MB`,
  adjustedSlabs: (from: number, to: number): string =>
    `software IO TLB: SWIOTLB bounce buffer size adjusted ${from} -> ${to} slabs`,
  /** pr_warn_once in swiotlb_tbl_map_single, at the first bounce on an encrypted platform. */
  memEncryption: (): string => 'software IO TLB: Memory encryption is active and system is using DMA bounce buffers',
  /** x86 pci_iommu_alloc. */
  pciDma: (): string => 'PCI-DMA: Using software bounce buffering for IO (SWIOTLB)',
} as const;

/** The proposed sysctl path of a per-pool tunable (RFC §15.8 discussion). */
export function tunablePath(name: string, pool = 'swiotlb_default'): string {
  return `/proc/sys/kernel/dma/${pool}/${name}`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The catalogue. */
export const EVENTS: { readonly [E in EventName]: EventSpec<E> } = {
  boot_line: {
    level: 'info',
    doc: 'A kernel boot message, verbatim (e.g. "software IO TLB: area num 32.").',
    required: { text: 'string' },
    message: (f) => f.text,
  },
  pool_created: {
    level: 'info',
    doc: 'An io_tlb_pool was added: the default pool at boot, a dynamic pool, a transient pool, or a restricted DMA pool (its own io_tlb_mem, pool 0 of it, with the device).',
    required: { pool: 'number', start: 'number', nslabs: 'number', nareas: 'number', kind: 'string' },
    message: (f) =>
      `swiotlb pool ${f.pool} (${f.kind}): [mem ${formatPhysAddr(f.start)}-${formatPhysAddr(f.start + f.nslabs * 2 ** IO_TLB_SHIFT)}] ${f.nslabs} slabs, ${plural(f.nareas, 'area')}`,
  },
  growth_failed: {
    level: 'warn',
    doc: 'Dynamic swiotlb: the growth worker (swiotlb_dyn_alloc) could not allocate a pool of 4, 2 or 1 MiB below phys_limit; ratelimited as the kernel\'s pr_warn_ratelimited.',
    required: { reason: 'string' },
    message: () => 'software IO TLB: Failed to allocate new pool',
  },
  transient_created: {
    level: 'debug',
    doc: 'Dynamic swiotlb: a transient pool for one mapping, from the atomic pool, linked on the device\'s list.',
    required: { device: 'string', vcpu: 'number', start: 'number', nslabs: 'number' },
    message: (f) => `${f.device}: swiotlb transient pool [mem ${formatPhysAddr(f.start)}-${formatPhysAddr(f.start + f.nslabs * 2 ** IO_TLB_SHIFT)}] ${f.nslabs} slabs`,
  },
  transient_freed: {
    level: 'debug',
    doc: 'Dynamic swiotlb: a transient pool\'s memory went back to the atomic pool after its grace period.',
    required: { device: 'string', vcpu: 'number', start: 'number', nslabs: 'number' },
    message: (f) => `${f.device}: swiotlb transient pool [mem ${formatPhysAddr(f.start)}] freed`,
  },
  map_failure: {
    level: 'warn',
    doc: 'A map found no free slots: "swiotlb buffer is full".',
    required: { device: 'string', vcpu: 'number', size: 'number', dir: 'string', total: 'number', used: 'number' },
    message: (f) => (f.cause === 'no_pool'
      ? `${f.device}: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer`
      : `${f.device}: swiotlb buffer is full (sz: ${f.size} bytes), total ${f.total} (slots), used ${f.used} (slots)`),
  },
  io_error: {
    level: 'warn',
    doc: 'A block request failed; the message is blk_print_req_error()\'s.',
    required: { device: 'string', vcpu: 'number', op: 'string', offset: 'number', size: 'number', reason: 'string' },
    message: (f) =>
      `I/O error, dev ${f.device}, sector ${Math.floor(f.offset / 512)} op 0x${(BLOCK_OP_CODE[f.op] ?? 0).toString(16)}:(${f.op.toUpperCase()}) flags 0x0 phys_seg ${f.phys_seg ?? 1} prio class 0`,
  },
  packet_dropped: {
    level: 'warn',
    doc: 'A NIC dropped a packet because its DMA mapping failed.',
    required: { device: 'string', vcpu: 'number', size: 'number', reason: 'string' },
    message: (f) => `${f.device}: ${f.dir === undefined ? '' : f.dir === 'tx' ? 'TX ' : 'RX '}DMA map failed, packet dropped (${f.size} bytes): ${f.reason}`,
  },
  throttle_begin: {
    level: 'debug',
    doc: 'A MAY_BLOCK map starts waiting on throttle_sem.',
    required: { vcpu: 'number', device: 'string', size: 'number', used: 'number', high_throttle: 'number', low_throttle: 'number', reason: 'string' },
    message: (f) =>
      `${f.device}: swiotlb throttle: ${f.size}-byte map waits, used ${f.used} > ${f.reason}_throttle ${f.reason === 'high' ? f.high_throttle : f.low_throttle}`,
  },
  throttle_end: {
    level: 'info',
    doc: 'A throttled map was admitted after wait_us microseconds (all throttle_begin fields too); timed_out: [proposal] hybrid, the wait reached --hybrid-timeout instead.',
    required: { vcpu: 'number', device: 'string', size: 'number', used: 'number', high_throttle: 'number', low_throttle: 'number', reason: 'string', wait_us: 'number' },
    message: (f) => f.timed_out === true
      ? `${f.device}: [proposal] swiotlb hybrid: ${f.size}-byte map's wait timed out after ${f.wait_us} us (used ${f.used} > ${f.reason}_throttle): it grows the pool`
      : `${f.device}: swiotlb throttle: ${f.size}-byte map admitted after ${f.wait_us} us (used ${f.used} > ${f.reason}_throttle)`,
  },
  stall: {
    level: 'error',
    doc: 'Throttle waiters parked longer than the watchdog allows behind one holder.',
    required: { holder: 'object', waiters: 'array', parked_ms: 'number' },
    message: (f) =>
      `swiotlb throttle stall${f.kind === 'self_deadlock' ? ' (self-deadlock)' : ''}: ${plural(f.waiters.length, 'waiter')} parked ${f.parked_ms} ms behind ${f.holder.device} on vCPU ${f.holder.vcpu} (${f.holder.size} bytes)${f.polled_queues !== undefined ? `; ${f.polled_queues.reduce((n, q) => n + q.posted_unreaped, 0)} polled completions not reaped on ${plural(f.polled_queues.length, 'poll queue')}` : ''}`,
  },
  tunable_changed: {
    level: 'info',
    doc: 'A tunable changed; name is the proposed sysctl path.',
    required: { name: 'string' },
    message: (f) => `${f.name}: ${String(f.old)} -> ${String(f.new)}`,
  },
  sample: {
    level: 'info',
    doc: 'Periodic sample of the allocator (io_tlb_used, hiwater, per-area used, throttle queue, IOPS).',
    required: {
      t_ms: 'number', io_tlb_used: 'number', io_tlb_used_hiwater: 'number', nslabs: 'number', area_used: 'array',
      throttle_queue_len: 'number', iops: 'number', high_throttle: 'number', low_throttle: 'number',
    },
    message: (f) =>
      `io_tlb_used ${f.io_tlb_used}/${f.nslabs} hiwater ${f.io_tlb_used_hiwater} throttle queue ${f.throttle_queue_len} iops ${Math.round(f.iops)}`,
  },
  run_start: {
    level: 'info',
    doc: 'The start barrier: every vCPU ready, the run\'s clock starts (t_ms 0 of the samples; the analyzer\'s +0).',
    required: { boot_ms: 'number' },
    message: (f) => `run started: ${f.vcpus !== undefined ? `${plural(f.vcpus, 'vCPU')} ` : ''}released from the start barrier after ${f.boot_ms} ms of boot`,
  },
  run_config: {
    level: 'info',
    doc: 'The run\'s configuration, once at the start.',
    required: { config: 'object' },
    message: (f) => {
      const c = f.config;
      const parts = [
        c.vcpus !== undefined ? `${c.vcpus} vCPUs` : undefined,
        c.nslabs !== undefined ? `${c.nslabs} slabs` : undefined,
        c.cmdline ? `cmdline "${c.cmdline}"` : undefined,
      ].filter((p): p is string => p !== undefined);
      return `run configuration${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
    },
  },
  run_summary: {
    level: 'info',
    doc: 'The final report, once at the end.',
    required: { summary: 'object' },
    message: (f) => `run ${f.summary.status ?? 'ended'}${f.summary.runtime_ms !== undefined ? ` after ${f.summary.runtime_ms} ms` : ''}`,
  },
  worker_error: {
    level: 'error',
    levelOf: (f) => (f.fatal ? 'fatal' : 'error'),
    doc: 'A thread failed (fatal when it could not continue).',
    required: { thread: 'string', fatal: 'boolean', error: 'object' },
    message: (f) => `${f.thread} ${f.fatal ? 'died' : 'failed'}: ${f.error.name}: ${f.error.message}`,
  },
  double_unmap: {
    level: 'error',
    doc: 'An unmap of a bounce address that holds no live mapping.',
    required: { device: 'string', vcpu: 'number', tlb_addr: 'number' },
    message: (f) =>
      `${f.device}: DMA-API: device driver tries to free DMA memory it has not allocated [device address=${formatPhysAddr(f.tlb_addr)}]${f.size !== undefined ? ` [size=${f.size} bytes]` : ''}`,
  },
  bounce_overflow: {
    level: 'warn',
    doc: 'A sync or unmap larger than the remaining allocation.',
    required: { device: 'string', vcpu: 'number', alloc_size: 'number', mapping_size: 'number' },
    message: (f) =>
      `${f.device}: Buffer overflow detected. Allocation size: ${f.alloc_size}. Mapping size: ${f.mapping_size}.`,
  },
  swiotlb_warn: {
    level: 'warn',
    doc: 'A warn-once message of swiotlb, e.g. "Alloc alignment may prevent fulfilling requests with max mapping_size".',
    required: { text: 'string' },
    message: (f) => (f.device !== undefined ? `${f.device}: ${f.text}` : `software IO TLB: ${f.text}`),
  },
  log_overflow: {
    level: 'warn',
    doc: 'A worker\'s log ring stayed full past COCO_LOG_FULL_WAIT; its records were dropped and counted.',
    required: { source: 'string', dropped: 'number' },
    message: (f) => `log: ${plural(f.dropped, 'record')} from ${f.source} dropped (log ring full)`,
  },
  stress_trial: {
    level: 'info',
    doc: 'A trial of the race stress harness ended: its seed, mode, size, operations and outcome.',
    required: {
      trial: 'number', seed: 'number', mode: 'string', vcpus: 'number', ops: 'number', perturbations: 'number',
      duration_ms: 'number', ok: 'boolean', failures: 'number',
    },
    message: (f) =>
      `stress trial ${f.trial} (seed ${f.seed}, ${f.mode}${f.mutant !== undefined ? `, mutant ${f.mutant}` : ''}, ${plural(f.vcpus, 'vCPU')}): ${f.ok ? 'ok' : plural(f.failures, 'broken check')}, ${plural(f.ops, 'operation')} in ${f.duration_ms} ms`,
  },
  stress_failure: {
    level: 'error',
    doc: 'A check of the race stress harness failed: the first broken check, all of them, the configuration and the replay command.',
    required: { trial: 'number', seed: 'number', mode: 'string', check: 'string', failures: 'array', config: 'object', replay: 'string' },
    message: (f) => `stress trial ${f.trial} failed (seed ${f.seed}, ${f.mode}): ${f.check}; replay: ${f.replay}`,
  },
  // ---- guest physical memory and the atomic DMA pool (src/memory) ----
  atomic_pool_expanded: {
    level: 'info',
    doc: 'atomic_pool_work_fn added a chunk to an atomic DMA pool (kernel/dma/pool.c prints nothing; the message is the emulator\'s).',
    required: { pool: 'string', bytes: 'number', phys: 'number', size: 'number' },
    message: (f) => `DMA: ${f.pool} atomic pool expanded by ${f.bytes >> 10} KiB at ${formatPhysAddr(f.phys)} to ${f.size >> 10} KiB`,
  },
  atomic_pool_exhausted: {
    level: 'warn',
    doc: 'No atomic DMA pool could serve an allocation: the kernel WARNs "DMA pool exhausted for %s" unless __GFP_NOWARN (a transient swiotlb pool\'s allocation carries it, so mainline is silent there).',
    required: { device: 'string', size: 'number' },
    message: (f) => f.text ?? `${f.device}: atomic DMA pool exhausted (${f.size} bytes; the kernel is silent: __GFP_NOWARN)`,
  },
};

/** Every event name, in catalogue order. */
export const EVENT_NAMES: readonly EventName[] = Object.freeze(Object.keys(EVENTS) as EventName[]);

/** True when `s` is a catalogue event name. */
export function isEventName(s: string): s is EventName {
  return Object.prototype.hasOwnProperty.call(EVENTS, s);
}

/** The level a record of `event` with these fields is written at. */
export function levelOf<E extends EventName>(event: E, fields: EventFields[E]): LevelName {
  const spec = EVENTS[event] as EventSpec<E>;
  return spec.levelOf ? spec.levelOf(fields) : spec.level;
}

/** The `msg` of a record of `event` with these fields. */
export function messageOf<E extends EventName>(event: E, fields: EventFields[E]): string {
  return (EVENTS[event] as EventSpec<E>).message(fields);
}

/** The kind of a JSON value, in FieldKind's terms. */
export function kindOf(v: unknown): FieldKind | 'null' | 'undefined' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  const t = typeof v;
  if (t === 'string' || t === 'number' || t === 'boolean' || t === 'object') return t;
  return 'undefined';
}

/** Each event's required fields as [key, kind] pairs, computed once (checkRecord runs per record). */
const REQUIRED: Readonly<Record<string, ReadonlyArray<readonly [string, FieldKind]>>> = Object.freeze(
  Object.fromEntries(EVENT_NAMES.map((e) => [
    e,
    Object.entries(EVENTS[e].required as Readonly<Record<string, FieldKind | undefined>>)
      .filter((kv): kv is [string, FieldKind] => kv[1] !== undefined),
  ])),
);

/**
 * Check a parsed record against the catalogue: its event is known and its required fields have the
 * right kinds. Returns undefined when it is fine, else why not (one short phrase).
 */
export function checkRecord(rec: Record<string, unknown>): string | undefined {
  const event = rec['event'];
  if (typeof event !== 'string') return 'no "event" field';
  if (!isEventName(event)) return `unknown event "${event}"`;
  return checkFields(event, rec);
}

/** checkRecord's field check, for a reader that has already found the record's event in the catalogue. */
export function checkFields(event: EventName, rec: Record<string, unknown>): string | undefined {
  for (const [key, want] of REQUIRED[event]!) {
    const v = rec[key];
    // typeof first: the common case needs no call.
    if (typeof v === want && v !== null && !Array.isArray(v)) continue;
    const got = kindOf(v);
    if (got !== want) return `${event}: field "${key}" is ${got}, expected ${want}`;
  }
  return undefined;
}
