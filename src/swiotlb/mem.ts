// io_tlb_mem: the allocator. Slot search, release, accounting and bounce copies, step for step as
// kernel/dma/swiotlb.c does them (reference §4-§9), over shared memory so that every vCPU thread maps
// and unmaps against the same pools at once.
//
// Concurrency (reference §18): slot metadata and area counters change only under their area's lock;
// total_used and used_hiwater are atomics updated outside the locks, so io_tlb_used may briefly differ
// from the sum of area.used, exactly as in the kernel. Metadata of a live mapping's data slots
// (orig_addr, pad_slots) is written by the mapping's owner after the search and read by it at
// unmap; the area lock taken at release orders those writes before the slots' next owner.
//
// [RFC] Throttling (DMA_ATTR_MAY_BLOCK, reference §15): throttle.ts holds the state and throttle_sem;
// the throttle* steps below are where swiotlb_tbl_map_single and the unmap path call into it.
import { InputError, assert } from '../errors.js';
import type { DmaDevice } from '../dma/device.js';
import type { GuestMemory } from '../memory/guest.js';
import { copyBytes } from '../memory/copy.js';
import type { ThrottleBeginFields } from '../log/events.js';
import { areaLock, areaUnlock } from './area-lock.js';
import {
  P_AREA_USED, P_HIWATER_UPDATE, P_SLOTS_FOUND, P_SLOTS_FREED, P_THROTTLE_CHECKED, P_TRANSIENT_COPIED, hook,
} from './instrument.js';
import {
  M_CURSOR_NO_WRAP, M_HIWATER_NO_CAS, M_INDEX_AFTER_UNLOCK, M_LIST_AFTER_UNLOCK, M_MERGE_SHORT, M_SEM_BEFORE_FREE,
  M_TOTAL_USED_EARLY, M_USED_AFTER_UNLOCK, mutant, raiseHiwaterWithoutCas, renumberFreeRunBeforeShort, throttledAt,
  writeAreaTailAfterUnlock,
} from './mutants.js';
import {
  DMA_ATTR_MAY_BLOCK, DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_DIRECTION_NAMES, DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR, DMA_TO_DEVICE, INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE,
  type DmaDirection, alignUp, getMaxSlots, ioTlbOffset, nrSlots,
} from './constants.js';
import {
  AREA_INDEX, AREA_USED, AREA_USED_HIWATER, MEM_ALIGN_WARNED, MEM_CAN_GROW, MEM_DEFAULT_NAREAS, MEM_DYNAMIC, MEM_ENCRYPTION_WARNED,
  MEM_FORCE_BOUNCE, MEM_MAX_POOLS, MEM_LOCK_SPINS, POOL_KIND_RESTRICTED, POOL_KIND_TRANSIENT, STATIC_MAX_POOLS, memHeaderBytes, MEM_MAGIC, MEM_MEM_ENCRYPT, MEM_MAGIC_VALUE, MEM_MAP_FAILURES, MEM_NPOOLS,
  MEM_NSLABS, MEM_OVERFLOW_WARNED, MEM_PARK_TIMEOUT_MS, MEM_POOL_TABLE, MEM_TOTAL_USED, MEM_TRANSIENT_NSLABS,
  MEM_USED_HIWATER, POOL_DESC_INTS, POOL_KIND, POOL_KIND_DEFAULT, POOL_NAREAS, POOL_NSLABS, POOL_START_HI,
  POOL_START_LO, STATS_FIELDS, STAT_BOUNCE_OVERFLOWS, STAT_MAP_FAIL_THROTTLE_ABORTED, STAT_BYTES_FROM_DEVICE, STAT_BYTES_TO_DEVICE,
  STAT_DOUBLE_UNMAPS, STAT_MAP_ATTEMPTS, STAT_MAP_FAIL_FULL, STAT_MAP_FAIL_NO_POOL, STAT_MAP_FAIL_OVERSIZE,
  STAT_MAP_OK, STAT_PAST_END_READS, STAT_SLOTS_MAPPED, STAT_SYNC_FOR_CPU, STAT_SYNC_FOR_DEVICE, STAT_UNMAPS,
  STAT_UNMAP_PASSTHROUGH, THR_ALLOC_BEGUN_MAY_BLOCK, THR_ALLOC_BEGUN_NON_BLOCK, THR_ALLOC_DONE_DELTA,
  THR_ALLOC_DONE_MAY_BLOCK, THR_ALLOC_DONE_NON_BLOCK, TSTAT_ABORTED, TSTAT_ADMITTED, TSTAT_BOUND_SLOTS_AT_MAX,
  TSTAT_BOUND_VIOLATIONS, TSTAT_CONCURRENT_SLOP, TSTAT_DEADLOCKS, TSTAT_FAILED_RELEASES, TSTAT_HIGH_THROTTLED,
  TSTAT_LOW_THROTTLED, TSTAT_NON_BLOCK_SLOTS_AT_MAX, TSTAT_OTHER_MAY_BLOCK_SLOTS_AT_MAX, TSTAT_OVERSHOOTS,
  TSTAT_OVERSHOOT_SLOTS_MAX, TSTAT_OWN_SLOTS_AT_MAX, TSTAT_UNMAP_RELEASES, TSTAT_USED_SLOTS_PEAK_THROTTLED,
  type PoolKind,
} from './layout.js';
import { IoTlbPool, type IoTlbPoolShared } from './pool.js';
import {
  DOWN_ABORTED, DOWN_ACQUIRED, THROTTLE_HIGH, THROTTLE_NONE, THROTTLE_REASONS, ThrottleState, ThrottleStats,
  WAIT_GRANTED, WAIT_TIMED_OUT, type ThrottleDebugfs, type ThrottleDecision, type ThrottleHolder, type ThrottleOptions,
  type ThrottleSnapshot, type ThrottleTunable,
} from './throttle.js';
import { nowMs } from '../util/clock.js';
import {
  type DynamicCreateOptions, type DynamicMemory, type DynamicShared, DynamicSwiotlb, createDynamicRegion, transientRecordOf,
} from './dynamic.js';
import { type HybridCreateOptions, HybridPolicy, createHybridRegion } from './hybrid.js';

/** Everything a thread needs to rebuild an allocator handle. */
export interface IoTlbMemShared {
  header: SharedArrayBuffer;
  pools: IoTlbPoolShared[];
  /** [RFC] The throttle region (throttle.ts); present even when throttling is off. */
  throttle: SharedArrayBuffer;
  /** CONFIG_SWIOTLB_DYNAMIC: the dynamic region, its metadata arena and the decrypted arena (dynamic.ts). */
  dyn?: DynamicShared;
  /** [proposal] The hybrid policy's region (hybrid.ts, Robin Murphy); with dyn and throttling on. */
  hybrid?: SharedArrayBuffer;
}

/** Structured reports of the kernel's warnings (ratelimiting is the consumer's business). */
export type SwiotlbEvent =
  | {
      event: 'map_failure';
      msg: string;
      device: string;
      vcpu: number;
      size: number;
      total: number;
      used: number;
      dir: string;
      cause: MapFailureCause;
    }
  | { event: 'double_unmap'; msg: string; device: string; vcpu: number; tlb_addr: number }
  | { event: 'bounce_overflow'; msg: string; device: string; vcpu: number; alloc_size: number; mapping_size: number }
  | { event: 'swiotlb_warn'; msg: string; device?: string; vcpu: number }
  // [RFC] A MAY_BLOCK request parks on throttle_sem, and is later admitted (the log catalogue's fields).
  | ({ event: 'throttle_begin'; msg: string } & ThrottleEventFields)
  | ({ event: 'throttle_end'; msg: string; wait_us: number; timed_out?: boolean } & ThrottleEventFields)
  // Dynamic swiotlb: a transient pool made for one mapping, and its memory back in the atomic pool after the grace period.
  | { event: 'transient_created' | 'transient_freed'; msg: string; device: string; vcpu: number; start: number; nslabs: number }
  // [proposal] Hybrid: a pool grown synchronously by a mapping thread whose wait timed out, or the growth that failed.
  | { event: 'pool_created'; msg: string; device: string; vcpu: number; pool: number; start: number; nslabs: number; nareas: number }
  | { event: 'growth_failed'; msg: string; device: string; vcpu: number; reason: string }
  // [RFC] §15.9: the caller is about to down() a semaphore held by its own cpu's live throttled mapping.
  | { event: 'throttle_deadlock'; msg: string; vcpu: number; device: string; size: number; holder: ThrottleHolder };

/** What a throttle wait reports, at its start and again (with wait_us) when it is admitted: the log catalogue's fields, all known here. */
type ThrottleEventFields = Required<ThrottleBeginFields>;

/** Why a map failed; throttle_aborted: a MAY_BLOCK request gave up its wait on throttle_sem (the abort word). */
export type MapFailureCause = 'full' | 'oversize' | 'no_pool' | 'throttle_aborted';

const MAP_FAIL_STAT: Readonly<Record<MapFailureCause, number>> = {
  full: STAT_MAP_FAIL_FULL, oversize: STAT_MAP_FAIL_OVERSIZE, no_pool: STAT_MAP_FAIL_NO_POOL, throttle_aborted: STAT_MAP_FAIL_THROTTLE_ABORTED,
};

/** The kernel's words for a failed map (the emulator's, for an aborted throttle wait). */
function mapFailureText(cause: MapFailureCause, size: number, total: number, used: number): string {
  if (cause === 'no_pool') return "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer";
  const what = cause === 'throttle_aborted' ? 'swiotlb throttle: wait for throttle_sem aborted' : 'swiotlb buffer is full';
  return `${what} (sz: ${size} bytes), total ${total} (slots), used ${used} (slots)`;
}

export type SwiotlbEventSink = (e: SwiotlbEvent) => void;

/** The debugfs view of an allocator (/sys/kernel/debug/swiotlb/). */
export interface SwiotlbDebugfs {
  io_tlb_nslabs: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  io_tlb_transient_nslabs: number;
}

export interface IoTlbMemCreateOptions {
  nslabs: number;
  nareas: number;
  /** Guest-physical start of the default pool (page-aligned). */
  start: number;
  forceBounce: boolean;
  /** A memory-encryption platform (cc_platform_has(CC_ATTR_MEM_ENCRYPT)): the first bounce says so. Default false. */
  memEncrypt?: boolean;
  lockSpins?: number;
  parkTimeoutMs?: number;
  /** [RFC] CONFIG_SWIOTLB_THROTTLE and the initial thresholds; default off. */
  throttle?: ThrottleOptions;
  /** io_tlb_mem.can_grow (CONFIG_SWIOTLB_DYNAMIC, the default allocator only; never a restricted pool). Default false. */
  canGrow?: boolean;
  /** CONFIG_SWIOTLB_DYNAMIC: the pool table, metadata and transient limits (dynamic.ts), over the decrypted arena's SAB. */
  dynamic?: DynamicCreateOptions & { arena: SharedArrayBuffer };
  /** The kind of the allocator's own pool (mem->defpool): default, or a restricted DMA pool's (restricted.ts). */
  poolKind?: typeof POOL_KIND_DEFAULT | typeof POOL_KIND_RESTRICTED;
  /** [proposal] The hybrid policy (hybrid.ts): needs `dynamic`, canGrow and throttling enabled. */
  hybrid?: HybridCreateOptions;
}

export interface IoTlbMemAttachOptions {
  /** The calling CPU: area selection starts at cpu & (nareas - 1). */
  cpu?: number;
  /** Private memory of this thread's vCPU; absent on device threads, which cannot bounce. */
  guest?: GuestMemory | null;
  events?: SwiotlbEventSink | null;
  /** This thread's statistics block (STATS_FIELDS float64s); a private one by default. */
  stats?: Float64Array;
  /** [RFC] This thread's throttle statistics block; a private one by default. */
  throttleStats?: ThrottleStats;
  /** CONFIG_SWIOTLB_DYNAMIC: this thread's handles on guest memory (the atomic pool for transient pools; the worker's pages). */
  memory?: DynamicMemory;
}

const MAX_SEGMENT_BYTES = IO_TLB_SEGSIZE * IO_TLB_SIZE;
const SLOT_MASK = IO_TLB_SIZE - 1;

export class IoTlbMem {
  readonly header: Int32Array;
  /** The pool list, newest first (list_add_rcu inserts at the head). */
  pools: IoTlbPool[] = [];
  cpu: number;
  guest: GuestMemory | null;
  events: SwiotlbEventSink | null;
  readonly stats: Float64Array;
  private readonly sharedPools: IoTlbPoolShared[];
  // Fixed at boot, so read from the header once rather than on every map.
  /** default_nareas: the k-loop bound of the pool search. */
  readonly defaultNareas: number;
  readonly forceBounce: boolean;
  private readonly memEncrypt: boolean;
  private readonly lockSpins: number;
  private readonly parkTimeoutMs: number;
  /** Pool of the last successful findSlots (a second return value without an allocation). */
  private foundPool: IoTlbPool | null = null;
  /** CONFIG_SWIOTLB_DYNAMIC: the growth and transient-pool policy (dynamic.ts), or null in a static build. */
  readonly dyn: DynamicSwiotlb | null;
  /** [proposal] The hybrid policy (hybrid.ts): a MAY_BLOCK map's throttle wait times out into a synchronous growth; null otherwise. */
  readonly hybrid: HybridPolicy | null;
  /** [RFC] throttle_sem, the thresholds and counters of this allocator (this thread's view). */
  readonly throttle: ThrottleState;
  /** [RFC] Fixed at boot: MAY_BLOCK is honoured. Read on the map path instead of shared memory. */
  readonly throttleEnabled: boolean;
  readonly throttleStats: ThrottleStats;
  /** [RFC] The throttle region's words when enabled (slop counters), else null: one test per allocation. */
  private readonly slopCounters: Int32Array | null;
  /** The slop counter the next allocation adds to: its class (MAY_BLOCK or not). */
  private allocBegun = THR_ALLOC_BEGUN_NON_BLOCK;
  /** total_used just after the last allocation's add (the value incUsedAndHiwater saw). */
  private usedAfterAlloc = 0;
  /** The throttled flag the last successful releaseSlots found (a second return value). */
  private releasedThrottled = 0;
  /** The throttle check of the request in progress: total_used and the "done" counters before it. */
  private checkUsed = 0;
  private checkDoneMayBlock = 0;
  private checkDoneNonBlock = 0;

  private constructor(shared: IoTlbMemShared, opts: IoTlbMemAttachOptions) {
    this.header = new Int32Array(shared.header);
    assert(this.header[MEM_MAGIC] === MEM_MAGIC_VALUE, 'allocator header is initialised');
    assert(shared.header.byteLength === memHeaderBytes(this.header[MEM_MAX_POOLS]!), 'allocator header has the layout size');
    this.sharedPools = shared.pools.slice();
    this.cpu = opts.cpu ?? 0;
    this.guest = opts.guest ?? null;
    this.events = opts.events ?? null;
    this.stats = opts.stats ?? new Float64Array(STATS_FIELDS);
    assert(this.stats.length >= STATS_FIELDS, 'statistics block has room for every field');
    this.defaultNareas = this.header[MEM_DEFAULT_NAREAS]!;
    this.forceBounce = this.header[MEM_FORCE_BOUNCE] === 1;
    this.memEncrypt = this.header[MEM_MEM_ENCRYPT] === 1;
    this.lockSpins = this.header[MEM_LOCK_SPINS]!;
    this.parkTimeoutMs = this.header[MEM_PARK_TIMEOUT_MS]!;
    this.throttle = new ThrottleState(shared.throttle);
    this.throttleEnabled = this.throttle.enabled;
    this.throttleStats = opts.throttleStats ?? ThrottleStats.create();
    this.slopCounters = this.throttleEnabled ? this.throttle.i32 : null;
    assert((this.header[MEM_DYNAMIC] === 1) === (shared.dyn !== undefined), 'a dynamic allocator comes with its dynamic region');
    this.dyn = shared.dyn === undefined ? null : new DynamicSwiotlb(this.header, shared.dyn, opts.memory ?? null);
    if (this.dyn !== null) {
      this.dyn.events = (e) => this.events?.(e);
      this.dyn.cpu = this.cpu;
    }
    this.hybrid = shared.hybrid === undefined ? null : new HybridPolicy(shared.hybrid, this.header, this.dyn!, this.throttle, () => this.events);
    this.refreshPools();
  }

  /** Create an allocator with its default pool (swiotlb_init_remap after sizing). */
  static create(opts: IoTlbMemCreateOptions, attach: IoTlbMemAttachOptions = {}): IoTlbMem {
    const dyn = opts.dynamic === undefined ? null : createDynamicRegion(opts.dynamic, opts.dynamic.arena);
    const maxPools = dyn === null ? STATIC_MAX_POOLS : dyn.maxPools;
    const header = new Int32Array(new SharedArrayBuffer(memHeaderBytes(maxPools)));
    header[MEM_MAGIC] = MEM_MAGIC_VALUE;
    header[MEM_MAX_POOLS] = maxPools;
    header[MEM_DYNAMIC] = dyn === null ? 0 : 1;
    header[MEM_DEFAULT_NAREAS] = opts.nareas;
    header[MEM_FORCE_BOUNCE] = opts.forceBounce ? 1 : 0;
    header[MEM_MEM_ENCRYPT] = opts.memEncrypt === true ? 1 : 0;
    header[MEM_CAN_GROW] = opts.canGrow === true && dyn !== null ? 1 : 0;
    header[MEM_LOCK_SPINS] = opts.lockSpins ?? 64;
    header[MEM_PARK_TIMEOUT_MS] = opts.parkTimeoutMs ?? 100;
    const pools: IoTlbPoolShared[] = [];
    if (opts.nslabs > 0) {
      const kind = opts.poolKind ?? POOL_KIND_DEFAULT;
      // A restricted pool has one area whatever its size (rmem_swiotlb_device_init); list values stop at the pool end.
      if (kind === POOL_KIND_DEFAULT && opts.nareas * IO_TLB_SEGSIZE > opts.nslabs) {
        throw new InputError('EBADAREAS', `swiotlb: ${opts.nareas} areas is more than ${opts.nslabs} slots can hold; expected at most ${Math.floor(opts.nslabs / IO_TLB_SEGSIZE)} (one 128-slot segment per area)`);
      }
      const pool = IoTlbPool.create({ start: opts.start, nslabs: opts.nslabs, nareas: opts.nareas, kind });
      publishPool(header, 0, pool.start, pool.nslabs, pool.nareas, kind);
      pools.push(pool.shared);
    }
    // init_throttling, once the default pool is in (§15.3).
    const throttle = ThrottleState.create(opts.nslabs, opts.throttle);
    assert(opts.hybrid === undefined || (dyn !== null && header[MEM_CAN_GROW] === 1 && throttle.enabled), 'the hybrid policy is dynamic swiotlb with throttling on');
    const hybrid = opts.hybrid === undefined ? {} : { hybrid: createHybridRegion(opts.hybrid) };
    return new IoTlbMem({ header: header.buffer as SharedArrayBuffer, pools, throttle: throttle.sab, ...(dyn !== null ? { dyn: dyn.shared } : {}), ...hybrid }, attach);
  }

  /** Rebuild a handle from the shared state, in any thread. */
  static attach(shared: IoTlbMemShared, opts: IoTlbMemAttachOptions = {}): IoTlbMem {
    return new IoTlbMem(shared, opts);
  }

  /** The SABs to hand to another thread. */
  shared(): IoTlbMemShared {
    return {
      header: this.header.buffer as SharedArrayBuffer, pools: this.sharedPools.slice(), throttle: this.throttle.sab,
      ...(this.dyn !== null ? { dyn: this.dyn.shared } : {}), ...(this.hybrid !== null ? { hybrid: this.hybrid.sab } : {}),
    };
  }

  /** Rebuild the pool list from the pool table (newest first): the boot pools' own SABs, then dynamic pools. */
  private refreshPools(): void {
    const n = Atomics.load(this.header, MEM_NPOOLS);
    const boot = Math.min(n, this.sharedPools.length);
    const pools: IoTlbPool[] = this.dyn === null ? [] : this.dyn.poolViews(boot, n).reverse();
    assert(this.dyn !== null || n === boot, 'every published pool has its SABs');
    for (let p = boot - 1; p >= 0; p--) {
      const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
      const start = (this.header[d + POOL_START_HI]! >>> 0) * 2 ** 32 + (this.header[d + POOL_START_LO]! >>> 0);
      pools.push(new IoTlbPool({
        start,
        nslabs: this.header[d + POOL_NSLABS]!,
        nareas: this.header[d + POOL_NAREAS]!,
        kind: this.header[d + POOL_KIND]! as PoolKind,
      }, this.sharedPools[p]!));
    }
    this.pools = pools;
  }

  get nslabs(): number {
    return this.header[MEM_NSLABS]!;
  }
  /** io_tlb_mem.can_grow: a failed search schedules growth and tries a transient pool. */
  get canGrow(): boolean {
    return this.header[MEM_CAN_GROW] === 1;
  }
  /** The default (boot-time) pool: the oldest one. */
  get defpool(): IoTlbPool {
    assert(this.pools.length > 0, 'the allocator has a default pool');
    return this.pools[this.pools.length - 1]!;
  }

  /** mem_used(): total_used (exact, counted outside the area locks). */
  memUsed(): number {
    return Atomics.load(this.header, MEM_TOTAL_USED);
  }

  /** The debugfs files of this allocator. */
  debugfs(): SwiotlbDebugfs {
    return {
      io_tlb_nslabs: this.nslabs,
      io_tlb_used: this.memUsed(),
      io_tlb_used_hiwater: Atomics.load(this.header, MEM_USED_HIWATER),
      io_tlb_transient_nslabs: Atomics.load(this.header, MEM_TRANSIENT_NSLABS),
    };
  }

  /** Write to io_tlb_used_hiwater: only 0 is accepted (anything else is EINVAL in the kernel). */
  writeUsedHiwater(value: number): void {
    if (value !== 0) {
      throw new InputError('EINVAL', `io_tlb_used_hiwater: writing ${value} is invalid; only 0 (reset) is accepted`);
    }
    Atomics.store(this.header, MEM_USED_HIWATER, 0);
  }

  /** Map failures of every thread, all causes. */
  mapFailures(): number {
    return Atomics.load(this.header, MEM_MAP_FAILURES);
  }

  /** swiotlb_max_mapping_size: a segment, less the min_align_mask rounded up to a slot. */
  maxMappingSize(dev: DmaDevice): number {
    const minAlign = dev.minAlignMask === 0 ? 0 : Math.ceil(dev.minAlignMask / IO_TLB_SIZE) * IO_TLB_SIZE;
    return MAX_SEGMENT_BYTES - minAlign;
  }

  /**
   * swiotlb_find_pool: the pool holding `addr`, or null if it is not a bounce buffer. Dynamic build:
   * none unless dev->dma_uses_io_tlb, else the allocator's pools, then the device's transient pools,
   * each linearly (§12.3).
   */
  findPool(dev: DmaDevice, addr: number): IoTlbPool | null {
    const dyn = this.dyn;
    if (dyn !== null) {
      if (!dyn.usesIoTlb(dev)) return null;
      this.poolsGrew();
    }
    const pools = this.pools;
    for (let p = 0; p < pools.length; p++) {
      const pool = pools[p]!;
      if (addr >= pool.start && addr < pool.end) return pool;
    }
    return dyn === null ? null : dyn.findTransient(dev, addr);
  }

  /** Dynamic build: take in the pools the growth worker published since this thread last looked (one Atomics.load when none). */
  private poolsGrew(): void {
    const n = Atomics.load(this.header, MEM_NPOOLS);
    if (n !== this.pools.length) this.pools = this.dyn!.poolViews(this.pools.length, n).reverse().concat(this.pools);
  }

  // --- map ------------------------------------------------------------------------------------

  /**
   * swiotlb_tbl_map_single: allocate bounce slots for `mappingSize` bytes at `origAddr`, record the
   * mapping and copy the original in. Returns the bounce address or DMA_MAPPING_ERROR.
   */
  tblMapSingle(dev: DmaDevice, origAddr: number, mappingSize: number, allocAlignMask: number, dir: DmaDirection, attrs: number): number {
    const stats = this.stats;
    stats[STAT_MAP_ATTEMPTS]!++;
    if (this.pools.length === 0) return this.mapFailed(dev, 0, dir, attrs, 'no_pool');
    if (this.memEncrypt && this.header[MEM_ENCRYPTION_WARNED] === 0) this.warnOnce(MEM_ENCRYPTION_WARNED, 'Memory encryption is active and system is using DMA bounce buffers', dev);
    if (allocAlignMask > PAGE_SIZE - 1 && this.header[MEM_ALIGN_WARNED] === 0) {
      this.warnOnce(MEM_ALIGN_WARNED, 'Alloc alignment may prevent fulfilling requests with max mapping_size', dev);
    }

    // [RFC] The throttle decision and wait (§15.4), before any slot is searched for.
    const mayBlock = (attrs & DMA_ATTR_MAY_BLOCK) !== 0 && this.throttleEnabled;
    let throttled: ThrottleDecision = THROTTLE_NONE;
    if (mayBlock) {
      const t = this.throttleCheckAndWait(dev, mappingSize);
      if (t < 0) return this.throttleAborted(dev, mappingSize, dir, attrs);
      throttled = t as ThrottleDecision;
      if (hook !== null) hook(P_THROTTLE_CHECKED, throttled);
    }

    const offset = alignOffset(dev, allocAlignMask, origAddr);
    const size = alignUp(mappingSize + offset, allocAlignMask + 1);
    const nslots = nrSlots(size);
    if (size > MAX_SEGMENT_BYTES) {
      const r = this.mapFailed(dev, size, dir, attrs, 'oversize');
      if (mayBlock) this.throttleAllocFailed(throttled);
      return r;
    }
    let index = this.findSlots(dev, origAddr, size, allocAlignMask);
    if (index < 0) {
      const r = this.mapFailed(dev, size, dir, attrs, 'full');
      if (mayBlock) this.throttleAllocFailed(throttled);
      return r;
    }
    const pool = this.foundPool!;

    // Record the mapping in its first data slot and in every data slot's orig_addr (§5.5).
    const padSlots = offset >>> IO_TLB_SHIFT;
    index += padSlots;
    pool.padSlots[index] = padSlots;
    if (mayBlock) this.throttleAdmitted(throttled, pool, index, nslots);
    const dataSlots = nslots - padSlots;
    for (let i = 0; i < dataSlots; i++) pool.origAddr[index + i] = origAddr + i * IO_TLB_SIZE;
    const tlbAddr = pool.start + index * IO_TLB_SIZE + (offset & SLOT_MASK);

    // The map-time copy happens for every direction and ignores SKIP_CPU_SYNC (§7).
    this.bounce(dev, tlbAddr, mappingSize, DMA_TO_DEVICE, pool);
    stats[STAT_MAP_OK]!++;
    stats[STAT_SLOTS_MAPPED]! += nslots;
    return tlbAddr;
  }

  /** A failed map: counted by cause, and reported (the kernel's text) unless DMA_ATTR_NO_WARN. */
  private mapFailed(dev: DmaDevice, size: number, dir: DmaDirection, attrs: number, cause: MapFailureCause): number {
    this.stats[MAP_FAIL_STAT[cause]]!++;
    Atomics.add(this.header, MEM_MAP_FAILURES, 1);
    if ((attrs & DMA_ATTR_NO_WARN) === 0 && this.events !== null) {
      const total = this.nslabs;
      const used = this.memUsed();
      this.events({
        event: 'map_failure', msg: mapFailureText(cause, size, total, used),
        device: dev.name, vcpu: this.cpu, size, total, used, dir: DMA_DIRECTION_NAMES[dir], cause,
      });
    }
    return DMA_MAPPING_ERROR;
  }

  /** A WARN_ONCE / pr_warn_once: `flag` (a MEM_*_WARNED word) makes it once per boot, across threads. */
  warnOnce(flag: number, msg: string, dev: DmaDevice): void {
    if (Atomics.compareExchange(this.header, flag, 0, 1) === 0 && this.events !== null) {
      this.events({ event: 'swiotlb_warn', msg, device: dev.name, vcpu: this.cpu });
    }
  }

  // --- [RFC] throttling (§15) ------------------------------------------------------------------

  /**
   * The throttle step of swiotlb_tbl_map_single for a MAY_BLOCK request (§15.4): read total_used once
   * (no reservation), decide, and down() throttle_sem when throttled. Returns the decision, or -1 when
   * the wait was aborted. It also notes what the slop measurement needs (see throttleAdmitted).
   */
  private throttleCheckAndWait(dev: DmaDevice, mappingSize: number): number {
    const t = this.throttle;
    const slop = this.slopCounters!;
    this.allocBegun = THR_ALLOC_BEGUN_MAY_BLOCK;
    // The "done" counters are read before total_used, so that no add to total_used after the read can
    // have been counted in them.
    this.checkDoneMayBlock = Atomics.load(slop, THR_ALLOC_DONE_MAY_BLOCK);
    this.checkDoneNonBlock = Atomics.load(slop, THR_ALLOC_DONE_NON_BLOCK);
    const used = Atomics.load(this.header, MEM_TOTAL_USED);
    this.checkUsed = used;
    if (this.hybrid !== null) this.hybrid.followNslabs(); // [proposal] thresholds follow io_tlb_nslabs
    const decision = t.decide(used);
    return decision === THROTTLE_NONE ? decision : this.throttleWait(dev, mappingSize, decision, used);
  }

  /** A throttled request: down() throttle_sem, waiting in FIFO order if it is held. */
  private throttleWait(dev: DmaDevice, mappingSize: number, decision: ThrottleDecision, used: number): number {
    const t = this.throttle;
    this.throttleStats.fields[decision === THROTTLE_HIGH ? TSTAT_HIGH_THROTTLED : TSTAT_LOW_THROTTLED]!++;
    const r = t.downBegin(this.cpu, dev.name, mappingSize);
    if (t.deadlockHolder !== null) this.throttleDeadlock(dev, mappingSize, t.deadlockHolder);
    if (r === DOWN_ACQUIRED) return decision;
    if (r === DOWN_ABORTED) return -1;
    const reason = THROTTLE_REASONS[decision] as 'high' | 'low';
    const high = t.decidedHigh;
    const low = t.decidedLow;
    const queueLen = t.queuedAhead;
    this.events?.({
      event: 'throttle_begin',
      msg: `${dev.name}: swiotlb throttle: ${mappingSize}-byte map waits, used ${used} > ${reason}_throttle ${reason === 'high' ? high : low}`,
      vcpu: this.cpu, device: dev.name, size: mappingSize, used, high_throttle: high, low_throttle: low, reason, queue_len: queueLen,
    });
    const t0 = nowMs();
    const hybrid = this.hybrid;
    const res = t.downWait(r, hybrid === null ? Infinity : hybrid.deadline(t0));
    const waitedMs = nowMs() - t0;
    this.throttleStats.recordWait(Math.max(0, waitedMs) * 1e6);
    // [proposal] Hybrid: the timed wait ended without the semaphore; grow from here, then search unthrottled.
    if (res === WAIT_TIMED_OUT) {
      const waitUs = Math.round(waitedMs * 1000);
      this.events?.({
        event: 'throttle_end', msg: `${dev.name}: [proposal] swiotlb hybrid: ${mappingSize}-byte map's wait timed out after ${waitUs} us`,
        vcpu: this.cpu, device: dev.name, size: mappingSize, used, high_throttle: high, low_throttle: low, reason, queue_len: queueLen, wait_us: waitUs, timed_out: true,
      });
      hybrid!.timedOut(dev, this.cpu);
      return THROTTLE_NONE;
    }
    if (res !== WAIT_GRANTED) return -1;
    const waitUs = Math.round(waitedMs * 1000);
    this.events?.({
      event: 'throttle_end',
      msg: `${dev.name}: swiotlb throttle: ${mappingSize}-byte map admitted after ${waitUs} us (used ${used} > ${reason}_throttle)`,
      vcpu: this.cpu, device: dev.name, size: mappingSize, used, high_throttle: high, low_throttle: low, reason, queue_len: queueLen,
      wait_us: waitUs,
    });
    return decision;
  }

  /**
   * After a MAY_BLOCK request's allocation succeeded. A throttled one flags its first data slot and
   * now holds the semaphore as a live mapping. An admitted one is a slop sample: used0 (the check's
   * read), used1 (total_used after its own add) and the bound the design implies. Every add to
   * total_used between the check and our own add (ours included) did its "begun" add before its
   * total_used add, so before our reads below, and its "done" add after its total_used add, so after
   * our "done" reads at the check: the begun-minus-done deltas cover it, and releases only lower
   * used1. So used1 - used0 <= bound always; a violation means broken accounting.
   */
  private throttleAdmitted(throttled: ThrottleDecision, pool: IoTlbPool, index: number, nslots: number): void {
    this.allocBegun = THR_ALLOC_BEGUN_NON_BLOCK;
    const used1 = this.usedAfterAlloc;
    const f = this.throttleStats.fields;
    if (throttled !== THROTTLE_NONE) {
      pool.throttled[index] = 1;
      this.throttle.holderMapped();
      if (used1 > f[TSTAT_USED_SLOTS_PEAK_THROTTLED]!) f[TSTAT_USED_SLOTS_PEAK_THROTTLED] = used1;
      return;
    }
    const slop = this.slopCounters!;
    // Wrapping differences: the counters are Int32 and only their deltas matter.
    const mayBlock = (Atomics.load(slop, THR_ALLOC_BEGUN_MAY_BLOCK) - this.checkDoneMayBlock) | 0;
    const nonBlock = (Atomics.load(slop, THR_ALLOC_BEGUN_NON_BLOCK) - this.checkDoneNonBlock) | 0;
    const bound = mayBlock + nonBlock;
    const growth = used1 - this.checkUsed;
    f[TSTAT_ADMITTED]!++;
    if (growth > bound) f[TSTAT_BOUND_VIOLATIONS]!++;
    if (growth > nslots) f[TSTAT_CONCURRENT_SLOP]!++;
    const overshoot = used1 - this.throttle.decidedHigh;
    if (overshoot <= 0) return;
    f[TSTAT_OVERSHOOTS]!++;
    this.throttleStats.overshootSlots.record(overshoot);
    if (overshoot > f[TSTAT_OVERSHOOT_SLOTS_MAX]!) {
      f[TSTAT_OVERSHOOT_SLOTS_MAX] = overshoot;
      f[TSTAT_BOUND_SLOTS_AT_MAX] = bound;
      f[TSTAT_OWN_SLOTS_AT_MAX] = nslots;
      f[TSTAT_OTHER_MAY_BLOCK_SLOTS_AT_MAX] = mayBlock - nslots;
      f[TSTAT_NON_BLOCK_SLOTS_AT_MAX] = nonBlock;
    }
  }

  /** The slot search of a MAY_BLOCK request failed: a throttled one releases the semaphore (§15.4 step 6). */
  private throttleAllocFailed(throttled: ThrottleDecision): void {
    this.allocBegun = THR_ALLOC_BEGUN_NON_BLOCK;
    if (throttled === THROTTLE_NONE) return;
    this.throttle.up();
    this.throttleStats.fields[TSTAT_FAILED_RELEASES]!++;
  }

  /** The unmap of the mapping flagged throttled: the next waiter, if any, gets the semaphore. */
  private throttleRelease(): void {
    if (hook !== null) hook(P_SLOTS_FREED, 0);
    this.throttle.up();
    this.throttleStats.fields[TSTAT_UNMAP_RELEASES]!++;
  }

  /** A throttled request gave up its wait because the abort word was set: the map fails. */
  private throttleAborted(dev: DmaDevice, mappingSize: number, dir: DmaDirection, attrs: number): number {
    this.allocBegun = THR_ALLOC_BEGUN_NON_BLOCK;
    this.throttleStats.fields[TSTAT_ABORTED]!++;
    return this.mapFailed(dev, mappingSize, dir, attrs, 'throttle_aborted');
  }

  private throttleDeadlock(dev: DmaDevice, size: number, holder: ThrottleHolder): void {
    this.throttleStats.fields[TSTAT_DEADLOCKS]!++;
    this.events?.({
      event: 'throttle_deadlock',
      msg: `swiotlb throttle: self-deadlock: ${dev.name} on vCPU ${this.cpu} waits for throttle_sem, held by its own live throttled mapping (${holder.device}, ${holder.size} bytes, held ${Math.round(holder.held_ms)} ms)`,
      vcpu: this.cpu, device: dev.name, size, holder,
    });
  }

  /** [RFC] The throttle debugfs files (§15.8), which exist whether or not throttling is on. */
  throttleDebugfs(): ThrottleDebugfs {
    return this.throttle.debugfs();
  }

  /**
   * [RFC] Write high_throttle, low_throttle or a counter. Values are not checked against each other,
   * as in the RFC; low_throttle above high_throttle gets a swiotlb_warn. Negative or fractional
   * values are an InputError.
   */
  writeThrottleTunable(name: ThrottleTunable, value: number): void {
    if (this.throttle.writeTunable(name, value) && this.events !== null) {
      const d = this.throttle.debugfs();
      this.events({
        event: 'swiotlb_warn', vcpu: this.cpu,
        msg: `swiotlb: low_throttle ${d.low_throttle} is above high_throttle ${d.high_throttle}; the low threshold has no effect`,
      });
    }
  }

  /** [RFC] Who holds throttle_sem and who waits (for a watchdog). */
  throttleSnapshot(): ThrottleSnapshot {
    return this.throttle.snapshot();
  }

  /** [RFC] Set the abort word: every throttle wait, now and later, gives up and its map fails. */
  throttleAbort(on = true): void {
    this.throttle.abort(on);
  }

  /**
   * swiotlb_find_slots: try area (cpu + k) of every pool, k-major and pool-minor, newest pool first
   * (§5.3). With one pool this is the non-dynamic order: the caller's area, then the next ones.
   * Returns the first allocated slot's index in this.foundPool, or -1.
   */
  findSlots(dev: DmaDevice, origAddr: number, allocSize: number, allocAlignMask: number): number {
    const dyn = this.dyn;
    if (dyn !== null) this.poolsGrew();
    const pools = this.pools;
    const nareas = this.header[MEM_DEFAULT_NAREAS]!;
    const cpu = this.cpu;
    for (let k = 0; k < nareas; k++) {
      for (let p = 0; p < pools.length; p++) {
        const pool = pools[p]!;
        if (k >= pool.nareas) continue;
        const index = this.searchPoolArea(dev, pool, (cpu + k) & (pool.nareas - 1), origAddr, allocSize, allocAlignMask);
        if (index >= 0) {
          this.foundPool = pool;
          if (dyn !== null) dyn.setUsesIoTlb(dev);
          return index;
        }
      }
    }
    // Dynamic swiotlb (§5.3 steps 3-5): schedule the growth work, then a transient pool for this request.
    if (dyn === null || this.header[MEM_CAN_GROW] !== 1) return -1;
    dyn.scheduleWork();
    const pool = dyn.transientPool(dev, allocSize, (tp) => this.searchPoolArea(dev, tp, 0, origAddr, allocSize, allocAlignMask));
    if (pool === null) return -1;
    this.foundPool = pool;
    dyn.setUsesIoTlb(dev);
    return dyn.lastIndex;
  }

  /**
   * swiotlb_search_pool_area: next-fit search of one area under its lock (§5.4). On success the
   * slots are marked used, the free run in front renumbered, the cursor moved past the allocation,
   * and total_used / used_hiwater raised after the lock is dropped.
   */
  searchPoolArea(dev: DmaDevice, pool: IoTlbPool, areaIndex: number, origAddr: number, allocSize: number, allocAlignMask: number): number {
    const tblDmaAddr = boundaryAnd(pool.start, dev.segBoundaryMask);
    const maxSlots = dev.maxSlots;
    let iotlbAlignMask = dev.minAlignMask;
    const nslots = nrSlots(allocSize);
    const subOffset = origAddr & dev.minAlignMask & SLOT_MASK;
    assert(nslots > 0 && areaIndex < pool.nareas, 'search of a real area for at least one slot');

    // Legacy page alignment for streaming mappings without other constraints (§5.4 rule 2).
    if (allocAlignMask === 0 && iotlbAlignMask === 0 && allocSize >= PAGE_SIZE) allocAlignMask = PAGE_SIZE - 1;
    allocAlignMask |= SLOT_MASK;
    iotlbAlignMask &= ~allocAlignMask;
    const stride = getMaxSlots(Math.max(allocAlignMask, iotlbAlignMask));
    const origBits = origAddr & iotlbAlignMask;
    const shift = nrSlots(tblDmaAddr);

    const areas = pool.areas;
    const base = pool.areaBase(areaIndex);
    const areaNslabs = pool.areaNslabs;
    const list = pool.list;
    areaLock(areas, base, this.lockSpins, this.parkTimeoutMs);
    if (nslots > areaNslabs - areas[base + AREA_USED]!) {
      areaUnlock(areas, base);
      return -1;
    }
    const slotBase = areaIndex * areaNslabs;
    let index = areas[base + AREA_INDEX]!;
    let slotIndex = -1;
    for (let checked = 0; checked < areaNslabs;) {
      const s = slotBase + index;
      const tlbAddr = tblDmaAddr + s * IO_TLB_SIZE;
      if ((tlbAddr & allocAlignMask) !== 0 || (origAddr !== 0 && (tlbAddr & iotlbAlignMask) !== origBits)) {
        index = index + 1 >= areaNslabs ? 0 : index + 1;
        checked++;
        continue;
      }
      if (!isSpanBoundary(s, nslots, shift, maxSlots) && list[s]! >= nslots) {
        slotIndex = s;
        break;
      }
      index = index + stride >= areaNslabs ? 0 : index + stride;
      checked += stride;
    }
    if (slotIndex < 0) {
      areaUnlock(areas, base);
      return -1;
    }
    if (hook !== null) hook(P_SLOTS_FOUND, slotIndex);
    const unlockEarly = mutant === M_LIST_AFTER_UNLOCK; // stress-harness mutant only (mutants.ts)
    if (unlockEarly) areaUnlock(areas, base);

    const allocSizes = pool.allocSize;
    for (let j = 0; j < nslots; j++) {
      list[slotIndex + j] = 0;
      allocSizes[slotIndex + j] = allocSize - (subOffset + j * IO_TLB_SIZE); // wraps like size_t
    }
    // Back-propagation: the free run in front now ends at slotIndex.
    renumberFreeRunBefore(list, slotIndex, 0);
    const next = index + nslots;
    const cursor = next >= areaNslabs ? (mutant === M_CURSOR_NO_WRAP ? next : 0) : next;
    // Mutants run only with the harness's hook installed: one test here in a normal run.
    if (hook !== null && (mutant === M_INDEX_AFTER_UNLOCK || mutant === M_USED_AFTER_UNLOCK)) {
      writeAreaTailAfterUnlock(areas, base, cursor, nslots, areaUnlock); // stress-harness mutants only (mutants.ts)
    } else {
      areas[base + AREA_INDEX] = cursor;
      if (hook !== null) hook(P_AREA_USED, nslots, areas);
      const areaUsed = (areas[base + AREA_USED]! += nslots);
      if (areaUsed > areas[base + AREA_USED_HIWATER]!) areas[base + AREA_USED_HIWATER] = areaUsed; // under the lock
      if (!unlockEarly) areaUnlock(areas, base);
    }

    this.incUsedAndHiwater(nslots);
    return slotIndex;
  }

  /** inc_used_and_hiwater: total_used += nslots, then raise used_hiwater by compare-and-exchange. */
  private incUsedAndHiwater(nslots: number): void {
    const header = this.header;
    // [RFC] Slop measurement, only with throttling on: the class's "begun" counter before the add and
    // its "done" counter after it. A request's window check..allocation then catches every add to
    // total_used inside it (throttleAdmitted explains the bound); one counter would miss an allocation
    // that straddles the check or the end of the window.
    const slop = this.slopCounters;
    if (slop !== null) Atomics.add(slop, this.allocBegun, nslots);
    const newUsed = Atomics.add(header, MEM_TOTAL_USED, nslots) + nslots;
    if (slop !== null) Atomics.add(slop, this.allocBegun + THR_ALLOC_DONE_DELTA, nslots);
    this.usedAfterAlloc = newUsed;
    // The first guess at used_hiwater is a plain read, as the kernel's atomic_long_read is (relaxed):
    // every write of the word is atomic and an Int32 element read never tears, so it returns a value
    // the word held; a stale one only costs a compare-exchange that fails and returns the current
    // value. Between resets (the only store that lowers it) the word only grows, so a stale guess is
    // never above it. Atomics.load here is a call into V8's builtin, as dear as the add above.
    let old = header[MEM_USED_HIWATER]!;
    if (hook !== null) hook(P_HIWATER_UPDATE, newUsed);
    if (mutant === M_HIWATER_NO_CAS) return raiseHiwaterWithoutCas(header, newUsed, old);
    while (newUsed > old) {
      const seen = Atomics.compareExchange(header, MEM_USED_HIWATER, old, newUsed);
      if (seen === old) break;
      old = seen;
    }
  }

  // --- unmap ----------------------------------------------------------------------------------

  /**
   * swiotlb_tbl_unmap_single: copy back if the direction needs it, then release the slots. An
   * address outside every pool is not a bounce buffer and passes through. Never blocks beyond one
   * area lock, never allocates.
   */
  tblUnmapSingle(dev: DmaDevice, tlbAddr: number, mappingSize: number, dir: DmaDirection, attrs: number): void {
    const pool = this.findPool(dev, tlbAddr);
    if (pool === null) {
      this.stats[STAT_UNMAP_PASSTHROUGH]!++;
      return;
    }
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)) {
      this.bounce(dev, tlbAddr, mappingSize, DMA_FROM_DEVICE, pool);
    }
    // swiotlb_del_transient: a transient pool goes whole, after the copy-back.
    if (pool.kind === POOL_KIND_TRANSIENT) return this.delTransient(dev, tlbAddr, pool);
    // [RFC] up() only after the slots are free, and only for the mapping flagged throttled (§15.5).
    if (mutant === M_SEM_BEFORE_FREE && throttledAt(pool, dev, tlbAddr)) this.throttleRelease(); // stress mutant only
    if (this.releaseSlots(dev, tlbAddr, pool) && this.releasedThrottled !== 0 && mutant !== M_SEM_BEFORE_FREE) this.throttleRelease();
  }

  /**
   * swiotlb_release_slots (§6): free the mapping's slots, renumbering the run backwards from the free
   * run behind it and merging the free run in front. A bounce address that is not mapped (double
   * unmap) is reported and leaves the lists untouched. Returns false in that case.
   */
  releaseSlots(dev: DmaDevice, tlbAddr: number, pool: IoTlbPool): boolean {
    const sub = tlbAddr & dev.minAlignMask & SLOT_MASK;
    const slot = (tlbAddr - sub - pool.start) / IO_TLB_SIZE;
    if (!Number.isInteger(slot)) return this.doubleUnmap(dev, tlbAddr);
    // Slot and area numbers are int32 (a pool has far fewer than 2^31 slots); `| 0` tells the compiler
    // so. Bounce addresses are doubles (above 2^31), and without it every index below, the release
    // loop and the walk in front would run in float64 arithmetic, converted back at each array access.
    const i0 = slot | 0;
    if (pool.origAddr[i0] === INVALID_PHYS_ADDR) return this.doubleUnmap(dev, tlbAddr);
    const throttled = pool.throttled[i0]!; // [RFC] read from the first data slot, before the pad adjustment
    const index = i0 - pool.padSlots[i0]!;
    const nslots = nrSlots(((pool.allocSize[index]! + sub) >>> 0)) | 0;
    const areaIndex = (index / pool.areaNslabs) | 0; // floor: index >= 0
    const areas = pool.areas;
    const base = pool.areaBase(areaIndex);
    const list = pool.list;

    const totalUsedEarly = hook !== null && mutant === M_TOTAL_USED_EARLY; // stress-harness mutant only (mutants.ts)
    if (totalUsedEarly) Atomics.sub(this.header, MEM_TOTAL_USED, nslots);
    areaLock(areas, base, this.lockSpins, this.parkTimeoutMs);
    // Under the lock: the range must still be one live mapping, or we would corrupt the lists.
    if (pool.origAddr[i0] === INVALID_PHYS_ADDR || nslots === 0 || !rangeInUse(list, index, nslots)) {
      areaUnlock(areas, base);
      return this.doubleUnmap(dev, tlbAddr);
    }
    // Seed from the free run behind the range, if it is in the same segment.
    let count = 0;
    const after = index + nslots;
    if (after < index - ioTlbOffset(index) + IO_TLB_SEGSIZE) { // the end of index's segment
      if (after >= pool.nslabs) this.stats[STAT_PAST_END_READS]!++; // §19: the kernel reads past the array
      else count = list[after]!;
    }
    for (let i = after - 1; i >= index; i--) {
      list[i] = ++count;
      pool.origAddr[i] = INVALID_PHYS_ADDR;
      pool.allocSize[i] = 0;
      pool.padSlots[i] = 0;
    }
    if (throttled !== 0) pool.throttled[i0] = 0; // cleared with the other fields, under the lock
    // Merge with the free run in front, up to the segment start.
    if (mutant === M_MERGE_SHORT) renumberFreeRunBeforeShort(list, index, count);
    else renumberFreeRunBefore(list, index, count);
    const used = areas[base + AREA_USED]! - nslots;
    assert(used >= 0, 'area.used stays within 0..area_nslabs');
    if (hook !== null) hook(P_AREA_USED, -nslots, areas);
    areas[base + AREA_USED] = used;
    areaUnlock(areas, base);

    if (!totalUsedEarly) Atomics.sub(this.header, MEM_TOTAL_USED, nslots); // after the area lock, as the kernel does (§9)
    this.stats[STAT_UNMAPS]!++;
    this.releasedThrottled = throttled;
    return true;
  }

  /** The unmap of a transient pool's mapping: the whole pool goes (dynamic.ts), and a throttled mapping's up() follows. */
  private delTransient(dev: DmaDevice, tlbAddr: number, pool: IoTlbPool): void {
    const i0 = Math.floor((tlbAddr - pool.start) / IO_TLB_SIZE);
    if (pool.origAddr[i0] === INVALID_PHYS_ADDR) {
      this.doubleUnmap(dev, tlbAddr);
      return;
    }
    const throttled = pool.throttled[i0]!;
    this.dyn!.delTransient(dev, pool);
    this.stats[STAT_UNMAPS]!++;
    if (throttled !== 0) this.throttleRelease();
  }

  private doubleUnmap(dev: DmaDevice, tlbAddr: number): false {
    this.stats[STAT_DOUBLE_UNMAPS]!++;
    this.events?.({
      event: 'double_unmap',
      msg: `swiotlb: unmap of bounce address 0x${tlbAddr.toString(16)} that is not mapped`,
      device: dev.name, vcpu: this.cpu, tlb_addr: tlbAddr,
    });
    return false;
  }

  // --- bounce and sync ------------------------------------------------------------------------

  /**
   * swiotlb_bounce (§7): copy between the original and the bounce buffer for any address inside a
   * mapping, so partial syncs work. delta may be negative: the first sub_offset bytes of a later slot
   * mirror the previous slot's bytes.
   */
  bounce(dev: DmaDevice, tlbAddr: number, size: number, dir: DmaDirection, pool: IoTlbPool): void {
    const idx = Math.floor((tlbAddr - pool.start) / IO_TLB_SIZE);
    let orig = pool.origAddr[idx]!;
    if (orig === INVALID_PHYS_ADDR) return;
    let rem = pool.allocSize[idx]!;
    const delta = (tlbAddr & SLOT_MASK) - (orig & dev.minAlignMask & SLOT_MASK);
    orig += delta;
    rem = (rem - delta) >>> 0;
    if (size > rem) {
      this.stats[STAT_BOUNCE_OVERFLOWS]!++;
      if (Atomics.compareExchange(this.header, MEM_OVERFLOW_WARNED, 0, 1) === 0) {
        this.events?.({
          event: 'bounce_overflow', msg: `Buffer overflow detected. Allocation size: ${rem}. Mapping size: ${size}.`,
          device: dev.name, vcpu: this.cpu, alloc_size: rem, mapping_size: size,
        });
      }
      size = rem;
    }
    const guest = this.guest;
    assert(guest !== null, 'bounce copies happen on a vCPU thread, which has private memory');
    const g = guest.offsetOf(orig, size);
    const t = tlbAddr - pool.start;
    if (dir === DMA_TO_DEVICE) {
      copyBytes(pool.dataRegion, t, guest.region, g, size);
      this.stats[STAT_BYTES_TO_DEVICE]! += size;
    } else {
      copyBytes(guest.region, g, pool.dataRegion, t, size);
      this.stats[STAT_BYTES_FROM_DEVICE]! += size;
      if (hook !== null && pool.kind === POOL_KIND_TRANSIENT) hook(P_TRANSIENT_COPIED, transientRecordOf(pool));
    }
  }

  /** swiotlb_sync_single_for_device: original -> bounce for TO_DEVICE and BIDIRECTIONAL. */
  syncSingleForDevice(dev: DmaDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.findPool(dev, tlbAddr);
    if (pool === null) return;
    this.stats[STAT_SYNC_FOR_DEVICE]!++;
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, tlbAddr, size, DMA_TO_DEVICE, pool);
    else assert(dir === DMA_FROM_DEVICE, 'sync_for_device with DMA_NONE is a BUG');
  }

  /** swiotlb_sync_single_for_cpu: bounce -> original for FROM_DEVICE and BIDIRECTIONAL. */
  syncSingleForCpu(dev: DmaDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.findPool(dev, tlbAddr);
    if (pool === null) return;
    this.stats[STAT_SYNC_FOR_CPU]!++;
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, tlbAddr, size, DMA_FROM_DEVICE, pool);
    else assert(dir === DMA_TO_DEVICE, 'sync_for_cpu with DMA_NONE is a BUG');
  }
}

/** Write a pool's descriptor into the table and publish it (the count is stored last). */
function publishPool(header: Int32Array, p: number, start: number, nslabs: number, nareas: number, kind: PoolKind): void {
  assert(p < header[MEM_MAX_POOLS]!, 'the pool table has room');
  const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
  header[d + POOL_START_LO] = start % 2 ** 32;
  header[d + POOL_START_HI] = Math.floor(start / 2 ** 32);
  header[d + POOL_NSLABS] = nslabs;
  header[d + POOL_NAREAS] = nareas;
  header[d + POOL_KIND] = kind;
  Atomics.add(header, MEM_NSLABS, nslabs);
  Atomics.store(header, MEM_NPOOLS, p + 1);
}

/** swiotlb_align_offset: bits of the original address that must reappear in the bounce address. */
export function alignOffset(dev: DmaDevice, allocAlignMask: number, origAddr: number): number {
  return origAddr & dev.minAlignMask & (allocAlignMask | SLOT_MASK);
}


/** addr & boundary_mask for masks of the form 2^k - 1 of any width (JS bit operators are 32-bit). */
function boundaryAnd(addr: number, mask: number): number {
  if (mask <= 0xffffffff) return (addr & mask) >>> 0;
  return mask >= 2 ** 52 ? addr : addr % (mask + 1);
}

/** iommu_is_span_boundary: would nslots slots from s cross a boundary window? */
function isSpanBoundary(s: number, nslots: number, shift: number, maxSlots: number): boolean {
  return ((shift + s) % maxSlots) + nslots > maxSlots;
}

/**
 * Walk back from slot `index - 1` to the start of its segment while slots are free, numbering them
 * count + 1, count + 2, ... (the kernel's loop "while io_tlb_offset(i) != IO_TLB_SEGSIZE - 1 &&
 * slots[i].list"). Written with a precomputed bound: this walk is the allocator's hottest loop (half
 * the time of a 4 KiB search + release, up to 127 slots each way). Unrolled by eight: optimised code
 * re-checks the array (its map and backing store) and the loop's interrupt on every pass, not on every
 * slot of a pass; the tail takes the last slots one by one. Same slots, same values, same order.
 */
function renumberFreeRunBefore(list: Uint16Array, index: number, count: number): void {
  const segStart = index - (index & (IO_TLB_SEGSIZE - 1));
  let i = index - 1;
  for (; i - 7 >= segStart; i -= 8) {
    if (list[i] === 0) return;
    list[i] = ++count;
    if (list[i - 1] === 0) return;
    list[i - 1] = ++count;
    if (list[i - 2] === 0) return;
    list[i - 2] = ++count;
    if (list[i - 3] === 0) return;
    list[i - 3] = ++count;
    if (list[i - 4] === 0) return;
    list[i - 4] = ++count;
    if (list[i - 5] === 0) return;
    list[i - 5] = ++count;
    if (list[i - 6] === 0) return;
    list[i - 6] = ++count;
    if (list[i - 7] === 0) return;
    list[i - 7] = ++count;
  }
  for (; i >= segStart && list[i] !== 0; i--) list[i] = ++count;
}

function rangeInUse(list: Uint16Array, index: number, nslots: number): boolean {
  for (let i = index; i < index + nslots; i++) if (list[i] !== 0) return false;
  return true;
}
