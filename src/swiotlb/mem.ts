// io_tlb_mem: the allocator. Slot search, release, accounting and bounce copies, step for step as
// kernel/dma/swiotlb.c does them (reference §4-§9), over shared memory so that every vCPU thread maps
// and unmaps against the same pools at once.
//
// Concurrency (reference §18): slot metadata and area counters change only under their area's lock;
// total_used and used_hiwater are atomics updated outside the locks, so io_tlb_used may briefly differ
// from the sum of area.used, exactly as in the kernel. Metadata of a live mapping's data slots
// (orig_addr, pad_slots) is written by the mapping's owner after the search and read by it at
// unmap; the area lock taken at release orders those writes before the slots' next owner.
import { InputError, assert } from '../errors.js';
import type { DmaDevice } from '../dma/device.js';
import type { GuestMemory } from '../memory/guest.js';
import { areaLock, areaUnlock } from './area-lock.js';
import { P_HIWATER_UPDATE, P_SLOTS_FOUND, hook } from './instrument.js';
import {
  M_CURSOR_NO_WRAP, M_HIWATER_NO_CAS, M_LIST_AFTER_UNLOCK, M_MERGE_SHORT, mutant, raiseHiwaterWithoutCas,
  renumberFreeRunBeforeShort,
} from './mutants.js';
import {
  DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_DIRECTION_NAMES, DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR, DMA_TO_DEVICE, INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE,
  type DmaDirection, getMaxSlots, nrSlots,
} from './constants.js';
import {
  AREA_INDEX, AREA_USED, MAX_POOLS, MEM_ALIGN_WARNED, MEM_CAN_GROW, MEM_DEFAULT_NAREAS, MEM_ENCRYPTION_WARNED,
  MEM_FORCE_BOUNCE, MEM_HEADER_BYTES, MEM_LOCK_SPINS, MEM_MAGIC, MEM_MAGIC_VALUE, MEM_MAP_FAILURES, MEM_NPOOLS,
  MEM_NSLABS, MEM_OVERFLOW_WARNED, MEM_PARK_TIMEOUT_MS, MEM_POOL_TABLE, MEM_TOTAL_USED, MEM_TRANSIENT_NSLABS,
  MEM_USED_HIWATER, POOL_DESC_INTS, POOL_KIND, POOL_KIND_DEFAULT, POOL_NAREAS, POOL_NSLABS, POOL_START_HI,
  POOL_START_LO, STATS_FIELDS, STAT_BOUNCE_OVERFLOWS, STAT_BYTES_FROM_DEVICE, STAT_BYTES_TO_DEVICE,
  STAT_DOUBLE_UNMAPS, STAT_MAP_ATTEMPTS, STAT_MAP_FAIL_FULL, STAT_MAP_FAIL_NO_POOL, STAT_MAP_FAIL_OVERSIZE,
  STAT_MAP_OK, STAT_PAST_END_READS, STAT_SLOTS_MAPPED, STAT_SYNC_FOR_CPU, STAT_SYNC_FOR_DEVICE, STAT_UNMAPS,
  STAT_UNMAP_PASSTHROUGH, type PoolKind,
} from './layout.js';
import { IoTlbPool, type IoTlbPoolShared } from './pool.js';

/** Everything a thread needs to rebuild an allocator handle. */
export interface IoTlbMemShared {
  header: SharedArrayBuffer;
  pools: IoTlbPoolShared[];
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
      cause: 'full' | 'oversize' | 'no_pool';
    }
  | { event: 'double_unmap'; msg: string; device: string; vcpu: number; tlb_addr: number }
  | { event: 'bounce_overflow'; msg: string; device: string; vcpu: number; alloc_size: number; mapping_size: number }
  | { event: 'swiotlb_warn'; msg: string; device?: string; vcpu: number };

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
  lockSpins?: number;
  parkTimeoutMs?: number;
}

export interface IoTlbMemAttachOptions {
  /** The calling CPU: area selection starts at cpu & (nareas - 1). */
  cpu?: number;
  /** Private memory of this thread's vCPU; absent on device threads, which cannot bounce. */
  guest?: GuestMemory | null;
  events?: SwiotlbEventSink | null;
  /** This thread's statistics block (STATS_FIELDS float64s); a private one by default. */
  stats?: Float64Array;
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
  private readonly lockSpins: number;
  private readonly parkTimeoutMs: number;
  /** Pool of the last successful findSlots (a second return value without an allocation). */
  private foundPool: IoTlbPool | null = null;

  private constructor(shared: IoTlbMemShared, opts: IoTlbMemAttachOptions) {
    assert(shared.header.byteLength === MEM_HEADER_BYTES, 'allocator header has the layout size');
    this.header = new Int32Array(shared.header);
    assert(this.header[MEM_MAGIC] === MEM_MAGIC_VALUE, 'allocator header is initialised');
    this.sharedPools = shared.pools.slice();
    this.cpu = opts.cpu ?? 0;
    this.guest = opts.guest ?? null;
    this.events = opts.events ?? null;
    this.stats = opts.stats ?? new Float64Array(STATS_FIELDS);
    assert(this.stats.length >= STATS_FIELDS, 'statistics block has room for every field');
    this.lockSpins = this.header[MEM_LOCK_SPINS]!;
    this.parkTimeoutMs = this.header[MEM_PARK_TIMEOUT_MS]!;
    this.refreshPools();
  }

  /** Create an allocator with its default pool (swiotlb_init_remap after sizing). */
  static create(opts: IoTlbMemCreateOptions, attach: IoTlbMemAttachOptions = {}): IoTlbMem {
    const header = new Int32Array(new SharedArrayBuffer(MEM_HEADER_BYTES));
    header[MEM_MAGIC] = MEM_MAGIC_VALUE;
    header[MEM_DEFAULT_NAREAS] = opts.nareas;
    header[MEM_FORCE_BOUNCE] = opts.forceBounce ? 1 : 0;
    header[MEM_CAN_GROW] = 0;
    header[MEM_LOCK_SPINS] = opts.lockSpins ?? 64;
    header[MEM_PARK_TIMEOUT_MS] = opts.parkTimeoutMs ?? 100;
    const pools: IoTlbPoolShared[] = [];
    if (opts.nslabs > 0) {
      if (opts.nareas * IO_TLB_SEGSIZE > opts.nslabs) {
        throw new InputError('EBADAREAS', `swiotlb: ${opts.nareas} areas is more than ${opts.nslabs} slots can hold; expected at most ${Math.floor(opts.nslabs / IO_TLB_SEGSIZE)} (one 128-slot segment per area)`);
      }
      const pool = IoTlbPool.create({ start: opts.start, nslabs: opts.nslabs, nareas: opts.nareas, kind: POOL_KIND_DEFAULT });
      publishPool(header, 0, pool.start, pool.nslabs, pool.nareas, POOL_KIND_DEFAULT);
      pools.push(pool.shared);
    }
    return new IoTlbMem({ header: header.buffer as SharedArrayBuffer, pools }, attach);
  }

  /** Rebuild a handle from the shared state, in any thread. */
  static attach(shared: IoTlbMemShared, opts: IoTlbMemAttachOptions = {}): IoTlbMem {
    return new IoTlbMem(shared, opts);
  }

  /** The SABs to hand to another thread. */
  shared(): IoTlbMemShared {
    return { header: this.header.buffer as SharedArrayBuffer, pools: this.sharedPools.slice() };
  }

  /** Rebuild the pool list from the pool table (newest first). */
  private refreshPools(): void {
    const n = Atomics.load(this.header, MEM_NPOOLS);
    assert(n <= this.sharedPools.length, 'every published pool has its SABs');
    const pools: IoTlbPool[] = [];
    for (let p = n - 1; p >= 0; p--) {
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
  get defaultNareas(): number {
    return this.header[MEM_DEFAULT_NAREAS]!;
  }
  get forceBounce(): boolean {
    return this.header[MEM_FORCE_BOUNCE] === 1;
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

  /** swiotlb_find_pool: the pool holding `addr`, or null if it is not a bounce buffer. */
  findPool(addr: number): IoTlbPool | null {
    const pools = this.pools;
    for (let p = 0; p < pools.length; p++) {
      const pool = pools[p]!;
      if (addr >= pool.start && addr < pool.end) return pool;
    }
    return null;
  }

  // --- map ------------------------------------------------------------------------------------

  /**
   * swiotlb_tbl_map_single: allocate bounce slots for `mappingSize` bytes at `origAddr`, record the
   * mapping and copy the original in. Returns the bounce address or DMA_MAPPING_ERROR.
   */
  tblMapSingle(dev: DmaDevice, origAddr: number, mappingSize: number, allocAlignMask: number, dir: DmaDirection, attrs: number): number {
    const stats = this.stats;
    stats[STAT_MAP_ATTEMPTS]!++;
    if (this.pools.length === 0 || this.nslabs === 0) {
      return this.mapFailed(dev, 0, dir, attrs, 'no_pool');
    }
    if (this.header[MEM_ENCRYPTION_WARNED] === 0) this.warnOnce(MEM_ENCRYPTION_WARNED, 'Memory encryption is active and system is using DMA bounce buffers', dev);
    if (allocAlignMask > PAGE_SIZE - 1 && this.header[MEM_ALIGN_WARNED] === 0) {
      this.warnOnce(MEM_ALIGN_WARNED, 'Alloc alignment may prevent fulfilling requests with max mapping_size', dev);
    }

    const offset = alignOffset(dev, allocAlignMask, origAddr);
    const size = Math.ceil((mappingSize + offset) / (allocAlignMask + 1)) * (allocAlignMask + 1);
    if (size > MAX_SEGMENT_BYTES) return this.mapFailed(dev, size, dir, attrs, 'oversize');
    let index = this.findSlots(dev, origAddr, size, allocAlignMask);
    if (index < 0) return this.mapFailed(dev, size, dir, attrs, 'full');
    const pool = this.foundPool!;

    // Record the mapping in its first data slot and in every data slot's orig_addr (§5.5).
    const padSlots = offset >>> IO_TLB_SHIFT;
    index += padSlots;
    pool.padSlots[index] = padSlots;
    const dataSlots = nrSlots(size) - padSlots;
    for (let i = 0; i < dataSlots; i++) pool.origAddr[index + i] = origAddr + i * IO_TLB_SIZE;
    const tlbAddr = pool.start + index * IO_TLB_SIZE + (offset & SLOT_MASK);

    // The map-time copy happens for every direction and ignores SKIP_CPU_SYNC (§7).
    this.bounce(dev, tlbAddr, mappingSize, DMA_TO_DEVICE, pool);
    stats[STAT_MAP_OK]!++;
    stats[STAT_SLOTS_MAPPED]! += nrSlots(size);
    return tlbAddr;
  }

  private mapFailed(dev: DmaDevice, size: number, dir: DmaDirection, attrs: number, cause: 'full' | 'oversize' | 'no_pool'): number {
    const stat = cause === 'full' ? STAT_MAP_FAIL_FULL : cause === 'oversize' ? STAT_MAP_FAIL_OVERSIZE : STAT_MAP_FAIL_NO_POOL;
    this.stats[stat]!++;
    Atomics.add(this.header, MEM_MAP_FAILURES, 1);
    if ((attrs & DMA_ATTR_NO_WARN) === 0 && this.events !== null) {
      const total = this.nslabs;
      const used = this.memUsed();
      this.events({
        event: 'map_failure',
        msg: cause === 'no_pool'
          ? "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer"
          : `swiotlb buffer is full (sz: ${size} bytes), total ${total} (slots), used ${used} (slots)`,
        device: dev.name, vcpu: this.cpu, size, total, used, dir: DMA_DIRECTION_NAMES[dir], cause,
      });
    }
    return DMA_MAPPING_ERROR;
  }

  private warnOnce(flag: number, msg: string, dev: DmaDevice): void {
    if (Atomics.compareExchange(this.header, flag, 0, 1) === 0 && this.events !== null) {
      this.events({ event: 'swiotlb_warn', msg, device: dev.name, vcpu: this.cpu });
    }
  }

  /**
   * swiotlb_find_slots: try area (cpu + k) of every pool, k-major and pool-minor, newest pool first
   * (§5.3). With one pool this is the non-dynamic order: the caller's area, then the next ones.
   * Returns the first allocated slot's index in this.foundPool, or -1.
   */
  findSlots(dev: DmaDevice, origAddr: number, allocSize: number, allocAlignMask: number): number {
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
          return index;
        }
      }
    }
    return -1;
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
    areas[base + AREA_INDEX] = next >= areaNslabs ? (mutant === M_CURSOR_NO_WRAP ? next : 0) : next;
    areas[base + AREA_USED]! += nslots;
    if (!unlockEarly) areaUnlock(areas, base);

    this.incUsedAndHiwater(nslots);
    return slotIndex;
  }

  /** inc_used_and_hiwater: total_used += nslots, then raise used_hiwater by compare-and-exchange. */
  private incUsedAndHiwater(nslots: number): void {
    const header = this.header;
    const newUsed = Atomics.add(header, MEM_TOTAL_USED, nslots) + nslots;
    let old = Atomics.load(header, MEM_USED_HIWATER);
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
    const pool = this.findPool(tlbAddr);
    if (pool === null) {
      this.stats[STAT_UNMAP_PASSTHROUGH]!++;
      return;
    }
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)) {
      this.bounce(dev, tlbAddr, mappingSize, DMA_FROM_DEVICE, pool);
    }
    this.releaseSlots(dev, tlbAddr, pool);
  }

  /**
   * swiotlb_release_slots (§6): free the mapping's slots, renumbering the run backwards from the free
   * run behind it and merging the free run in front. A bounce address that is not mapped (double
   * unmap) is reported and leaves the lists untouched. Returns false in that case.
   */
  releaseSlots(dev: DmaDevice, tlbAddr: number, pool: IoTlbPool): boolean {
    const sub = tlbAddr & dev.minAlignMask & SLOT_MASK;
    const i0 = (tlbAddr - sub - pool.start) / IO_TLB_SIZE;
    if (!Number.isInteger(i0) || pool.origAddr[i0] === INVALID_PHYS_ADDR) return this.doubleUnmap(dev, tlbAddr);
    const index = i0 - pool.padSlots[i0]!;
    const nslots = nrSlots(((pool.allocSize[index]! + sub) >>> 0));
    const areaIndex = Math.floor(index / pool.areaNslabs);
    const areas = pool.areas;
    const base = pool.areaBase(areaIndex);
    const list = pool.list;

    areaLock(areas, base, this.lockSpins, this.parkTimeoutMs);
    // Under the lock: the range must still be one live mapping, or we would corrupt the lists.
    if (pool.origAddr[i0] === INVALID_PHYS_ADDR || nslots === 0 || !rangeInUse(list, index, nslots)) {
      areaUnlock(areas, base);
      return this.doubleUnmap(dev, tlbAddr);
    }
    // Seed from the free run behind the range, if it is in the same segment.
    let count = 0;
    const after = index + nslots;
    if (after < Math.ceil((index + 1) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE) {
      if (after >= pool.nslabs) this.stats[STAT_PAST_END_READS]!++; // §19: the kernel reads past the array
      else count = list[after]!;
    }
    for (let i = after - 1; i >= index; i--) {
      list[i] = ++count;
      pool.origAddr[i] = INVALID_PHYS_ADDR;
      pool.allocSize[i] = 0;
      pool.padSlots[i] = 0;
    }
    // Merge with the free run in front, up to the segment start.
    if (mutant === M_MERGE_SHORT) renumberFreeRunBeforeShort(list, index, count);
    else renumberFreeRunBefore(list, index, count);
    const used = areas[base + AREA_USED]! - nslots;
    assert(used >= 0, 'area.used stays within 0..area_nslabs');
    areas[base + AREA_USED] = used;
    areaUnlock(areas, base);

    Atomics.sub(this.header, MEM_TOTAL_USED, nslots);
    this.stats[STAT_UNMAPS]!++;
    return true;
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
      pool.data.set(guest.bytes.subarray(g, g + size), t);
      this.stats[STAT_BYTES_TO_DEVICE]! += size;
    } else {
      guest.bytes.set(pool.data.subarray(t, t + size), g);
      this.stats[STAT_BYTES_FROM_DEVICE]! += size;
    }
  }

  /** swiotlb_sync_single_for_device: original -> bounce for TO_DEVICE and BIDIRECTIONAL. */
  syncSingleForDevice(dev: DmaDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.findPool(tlbAddr);
    if (pool === null) return;
    this.stats[STAT_SYNC_FOR_DEVICE]!++;
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, tlbAddr, size, DMA_TO_DEVICE, pool);
    else assert(dir === DMA_FROM_DEVICE, 'sync_for_device with DMA_NONE is a BUG');
  }

  /** swiotlb_sync_single_for_cpu: bounce -> original for FROM_DEVICE and BIDIRECTIONAL. */
  syncSingleForCpu(dev: DmaDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.findPool(tlbAddr);
    if (pool === null) return;
    this.stats[STAT_SYNC_FOR_CPU]!++;
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, tlbAddr, size, DMA_FROM_DEVICE, pool);
    else assert(dir === DMA_TO_DEVICE, 'sync_for_cpu with DMA_NONE is a BUG');
  }
}

/** Write a pool's descriptor into the table and publish it (the count is stored last). */
function publishPool(header: Int32Array, p: number, start: number, nslabs: number, nareas: number, kind: PoolKind): void {
  assert(p < MAX_POOLS, 'the pool table has room');
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
 * slots[i].list"). Written with a precomputed bound: this walk is the allocator's hottest loop.
 */
function renumberFreeRunBefore(list: Uint16Array, index: number, count: number): void {
  const segStart = index - (index & (IO_TLB_SEGSIZE - 1));
  let i = index - 1;
  while (i >= segStart && list[i] !== 0) {
    list[i] = ++count;
    i--;
  }
}

function rangeInUse(list: Uint16Array, index: number, nslots: number): boolean {
  for (let i = index; i < index + nslots; i++) if (list[i] !== 0) return false;
  return true;
}
