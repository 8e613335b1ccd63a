// A checked map/unmap workload for one thread against a shared allocator. Used by the multi-thread
// tests and the stress harness (src/stress/). It plays both the driver (private memory) and the device
// (the bounce buffer), and checks, as it goes:
//   - no slot belongs to two live mappings: an ownership shadow (one Int32 per slot, shared by all
//     threads) is claimed with compare-exchange at map and released before unmap, padding slots
//     included;
//   - every mapping's geometry (§18.1, §18.9): its slots lie in one segment of one area, the bounce
//     address keeps the min_align_mask bits of the original, the allocation starts on its alignment;
//   - data: each mapping carries a canary pattern (a slice of a per-thread random buffer, so a copy
//     that is shifted or crosses into another mapping shows). After map the device side holds the
//     CPU's pattern; the device then writes its answer for FROM_DEVICE/BIDIRECTIONAL; before unmap the
//     bounce buffer still holds what was last written there (no other mapping wrote into it); after
//     unmap private memory holds the answer (or, for TO_DEVICE, the original); the guard bytes
//     around the private buffer are never touched;
//   - every io_tlb_used value it reads is later covered by used_hiwater (checked by the caller);
//   - dynamic swiotlb: a mapping lies wholly in one pool: the pool swiotlb_find_pool names for its
//     bounce address holds all its slots, and no other pool (default, dynamic or live transient)
//     holds any byte of its bounce range. Mappings land in any pool; each is checked in its own.
// Maps are single (dma_map_single), IOMMU-style with an alloc_align_mask (swiotlb_tbl_map_single),
// or scatter-gather lists (dma_map_sgtable), in shares the configuration sets. [RFC] A share of the
// dma-direct ones pass DMA_ATTR_MAY_BLOCK, except while the thread holds a live mapping flagged
// throttled: a second MAY_BLOCK map could then wait for a semaphore only its own unmap releases
// (the self-deadlock of §15.9), so it behaves as a driver must for throttling to make progress.
import { DmaDevice } from '../dma/device.js';
import { ScatterList, dmaMapSgtable, dmaMapSingle, dmaUnmapSg, dmaUnmapSingle } from '../dma/direct.js';
import { GuestMemory } from '../memory/guest.js';
import {
  DMA_ATTR_MAY_BLOCK, DMA_BIDIRECTIONAL, DMA_DIRECTION_NAMES, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SEGSIZE,
  IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE, type DmaDirection, nrSlots,
} from './constants.js';
import { TSTAT_BOUND_VIOLATIONS, TSTAT_WAITS } from './layout.js';
import { P_EXERCISER_OP, hook } from './instrument.js';
import { IoTlbMem, type IoTlbMemShared } from './mem.js';
import type { IoTlbPool } from './pool.js';
import { POOL_KIND_NAMES, POOL_KIND_TRANSIENT } from './layout.js';
import { transientRecordOf } from './dynamic.js';
import { AtomicPool } from '../memory/atomic-pool.js';
import { DecryptedArena } from '../memory/arena.js';
import type { GuestMemoryShared } from '../memory/boot.js';
import { GuestPhysMem } from '../memory/phys.js';
import { Rng } from '../util/rng.js';

export interface ExerciserConfig {
  shared: IoTlbMemShared;
  /**
   * Ownership shadow: Int32 per slot, 0 = free, else the owner's cpu + 1. The default pool's slots
   * first; with dynamic swiotlb, then one per Uint16 of the metadata arena (a dynamic or transient
   * pool's slot s is at default nslabs + its list's element offset + s: unique per slot).
   */
  owners: SharedArrayBuffer;
  /** Dynamic swiotlb: guest memory (the atomic pool for transient pools). */
  memory?: GuestMemoryShared;
  /** The DMA device's name; default `exerciser<cpu>` (dynamic trials share a few devices between threads). */
  device?: string;
  /** Private memory shared by the exercisers; this thread uses [regionOffset, regionOffset + regionBytes). */
  guest: SharedArrayBuffer;
  guestBase: number;
  regionOffset: number;
  regionBytes: number;
  cpu: number;
  ops: number;
  seed: number;
  /** Live mappings kept at most. */
  maxLive: number;
  /** Largest mapping (or SG entry) in bytes. */
  maxSize: number;
  minAlignMask: number;
  // --- optional; the defaults are the plain workload of the multi-thread tests -------------------
  /** alloc_align_mask values for IOMMU-style maps (one drawn per such map). Default none. */
  allocAlignMasks?: readonly number[];
  /** Share of maps that are IOMMU-style, 0..1. Default 0. */
  allocAlignShare?: number;
  /** Share of maps that are scatter-gather lists, 0..1. Default 0. */
  sgShare?: number;
  /** Entries of an SG list: 2..sgMaxEntries, each up to maxSize bytes. Default 4. */
  sgMaxEntries?: number;
  /** Relative weights of BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE. Default 2:2:2 (a third each). */
  dirWeights?: readonly [number, number, number];
  /** [RFC] Share of dma-direct maps (single and SG) passing DMA_ATTR_MAY_BLOCK. Default 0. */
  mayBlockShare?: number;
}

/** A live mapping as the probe sees it: its entries' first data slots and original addresses. */
export interface ExerciserMapping {
  /** [RFC] Flagged throttled: it holds throttle_sem (for an SG list: entry 0 holds it for the list). */
  readonly throttled: boolean;
  readonly dataSlot: readonly number[];
  readonly orig: readonly number[];
  /** Each entry's pool, and its transient-pool record (-1 when not transient). */
  readonly pools: readonly IoTlbPool[];
  readonly rec: readonly number[];
  /** Each entry's slots (padding included): what it adds to total_used. */
  readonly nslots: readonly number[];
  readonly dir: DmaDirection;
}

/** Hooks for the stress harness; every member optional. */
export interface ExerciserProbe {
  /** Before each operation; returning false ends the workload (its live mappings are still unmapped). */
  beforeOp?(op: number): boolean;
  /** After each map attempt, with its outcome. */
  afterMap?(ok: boolean): void;
  /** Each broken check as it is found. */
  onViolation?(msg: string): void;
  /** A map succeeded and its slots were claimed. */
  mapped?(m: ExerciserMapping): void;
  /** About to unmap `m` (its slots released from the ownership shadow). */
  unmapping?(m: ExerciserMapping): void;
  /** The unmap of the mapping announced by unmapping() returned. */
  unmapped?(): void;
}

export interface ExerciserResult {
  /** Operations done: map attempts plus unmaps. */
  ops: number;
  maps: number;
  mapFailures: number;
  unmaps: number;
  violations: string[];
  maxUsedSeen: number;
  /** [RFC] Maps that came back flagged throttled. */
  throttledMaps: number;
  /** [RFC] This thread's throttle statistics: waits, slop bound violations. */
  throttleWaits: number;
  throttleBoundViolations: number;
}

const GUARD = 16; // bytes on each side of a private buffer that no copy may touch
const VERIFY_SAMPLES = 2; // random byte positions checked per buffer and direction, besides both ends
const GUARD_BYTE = 0x5a;
const MAX_VIOLATIONS = 20;

interface Live extends ExerciserMapping {
  /** Entries: 1 for single and IOMMU-style maps. */
  n: number;
  throttled: boolean;
  dataSlot: number[];
  orig: number[];
  sgl: ScatterList | null;
  tlb: number[];
  pools: IoTlbPool[];
  rec: number[];
  /** Private offset and length of each entry. */
  off: number[];
  len: number[];
  first: number[];
  nslots: number[];
  dir: DmaDirection;
  /** Offset of the mapping's canary in the pattern buffers (entry i starts at pat + off[i] - off[0]). */
  pat: number;
  iommu: boolean;
}

export function runExerciser(cfg: ExerciserConfig, probe: ExerciserProbe = {}): ExerciserResult {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  let memory;
  if (cfg.memory !== undefined) {
    const phys = GuestPhysMem.attach(cfg.memory.phys);
    const arena = DecryptedArena.attach(cfg.memory.arena);
    memory = { arena, atomicPool: AtomicPool.attach(cfg.memory.atomicPool, phys, arena) };
  }
  const mem = IoTlbMem.attach(cfg.shared, { cpu: cfg.cpu, guest, ...(memory !== undefined ? { memory } : {}) });
  const dev = new DmaDevice(cfg.device ?? `exerciser${cfg.cpu}`, { minAlignMask: cfg.minAlignMask });
  const defpool = mem.defpool;
  const dynamic = mem.dyn !== null;
  /** The ownership shadow's index of slot `s` of `pool` (see ExerciserConfig.owners). */
  const ownerIndex = (p: IoTlbPool, s: number) => (p === defpool ? s : defpool.nslabs + p.list.byteOffset / 2 + s);
  const owners = new Int32Array(cfg.owners);
  const rng = new Rng(cfg.seed);
  const id = cfg.cpu + 1;
  const sgMax = Math.max(2, cfg.sgMaxEntries ?? 4);
  const sgShare = cfg.sgShare ?? 0;
  const alignShare = cfg.allocAlignMasks !== undefined && cfg.allocAlignMasks.length > 0 ? (cfg.allocAlignShare ?? 0) : 0;
  const [wBi, wTo, wFrom] = cfg.dirWeights ?? [2, 2, 2];
  const samples = VERIFY_SAMPLES;
  const mayBlockShare = cfg.mayBlockShare ?? 0;
  let throttledLive = 0;
  const bufBytes = (sgShare > 0 ? sgMax : 1) * cfg.maxSize;
  const slotBytes = bufBytes + 2 * GUARD + PAGE_SIZE;
  const nbuf = Math.floor(cfg.regionBytes / slotBytes);
  const live: (Live | null)[] = new Array(Math.max(1, Math.min(cfg.maxLive, nbuf))).fill(null);
  if (nbuf < 1) throw new RangeError(`exerciser: region of ${cfg.regionBytes} bytes cannot hold one ${slotBytes}-byte buffer`);
  const res: ExerciserResult = {
    ops: 0, maps: 0, mapFailures: 0, unmaps: 0, violations: [], maxUsedSeen: 0, throttledMaps: 0,
    throttleWaits: 0, throttleBoundViolations: 0,
  };
  const bytes = guest.bytes;
  // Canaries: the CPU writes slices of `pat`; the device answers with the same slice of `ans`.
  const patLen = bufBytes + PAGE_SIZE;
  const pat = new Uint8Array(patLen);
  const ans = new Uint8Array(patLen);
  for (let i = 0; i < patLen; i++) {
    pat[i] = rng.next() & 0xff;
    ans[i] = pat[i]! ^ 0xff;
  }
  const fail = (m: string) => {
    const msg = `cpu ${cfg.cpu}: ${m}`;
    if (res.violations.length < MAX_VIOLATIONS) res.violations.push(msg);
    probe.onViolation?.(msg);
  };
  const pos = (size: number, k: number) => (k === 0 ? 0 : k === 1 ? size - 1 : rng.below(size));
  const dirOf = (): DmaDirection => {
    const r = rng.below(wBi + wTo + wFrom);
    return (r < wBi ? DMA_BIDIRECTIONAL : r < wBi + wTo ? DMA_TO_DEVICE : DMA_FROM_DEVICE) as DmaDirection;
  };
  const sizeOf = () => (rng.below(16) === 0 ? cfg.maxSize : rng.logUniform(cfg.maxSize));

  /** Check one mapped entry's geometry and claim its slots; false if it cannot be trusted. */
  const claim = (tlb: number, orig: number, size: number, allocMask: number, m: Live, i: number): boolean => {
    const offset = orig & cfg.minAlignMask & (allocMask | (IO_TLB_SIZE - 1));
    const allocSize = Math.ceil((size + offset) / (allocMask + 1)) * (allocMask + 1);
    const nslots = nrSlots(allocSize);
    const pool = dynamic ? mem.findPool(dev, tlb) : defpool;
    if (pool === null) {
      fail(`bounce address 0x${tlb.toString(16)} of a ${size}-byte mapping is in no pool right after its map`);
      return false;
    }
    const slotPos = (tlb - (offset & (IO_TLB_SIZE - 1)) - pool.start) / IO_TLB_SIZE;
    const first = slotPos - (offset >>> IO_TLB_SHIFT);
    if (!Number.isInteger(first) || first < 0 || first + nslots > pool.nareas * pool.areaNslabs) {
      fail(`bounce address 0x${tlb.toString(16)} of a ${size}-byte mapping is not ${offset & (IO_TLB_SIZE - 1)} bytes into a slot of its ${POOL_KIND_NAMES[pool.kind]} pool at 0x${pool.start.toString(16)}, or its ${nslots} slots run past the pool's ${pool.nareas * pool.areaNslabs} (a mapping lies wholly in one pool)`);
      return false;
    }
    const rec = pool.kind === POOL_KIND_TRANSIENT ? transientRecordOf(pool) : -1;
    if (dynamic) {
      // A mapping lies wholly in one pool: no other pool holds any byte of its slots.
      const lo = pool.start + first * IO_TLB_SIZE;
      const hi = lo + nslots * IO_TLB_SIZE;
      const other = mem.pools.find((q) => q !== pool && lo < q.end && q.start < hi);
      const otherTr = other === undefined ? mem.dyn!.liveTransientPools().find((q) => q.rec !== rec && lo < q.end && q.start < hi) : undefined;
      if (other !== undefined || otherTr !== undefined) {
        const o = other ?? otherTr!;
        fail(`mapping of bounce 0x${lo.toString(16)}..0x${hi.toString(16)} in the ${POOL_KIND_NAMES[pool.kind]} pool at 0x${pool.start.toString(16)} also lies in the ${other !== undefined ? POOL_KIND_NAMES[other.kind] : 'transient'} pool 0x${o.start.toString(16)}..0x${o.end.toString(16)} (a mapping lies wholly in one pool)`);
      }
    }
    checkGeometry(pool, cfg.minAlignMask, tlb, orig, first, nslots, allocMask, allocSize, fail);
    for (let s = first; s < first + nslots; s++) {
      const prev = Atomics.compareExchange(owners, ownerIndex(pool, s), 0, id);
      if (prev !== 0) fail(`slot ${s} of the pool at 0x${pool.start.toString(16)} mapped by cpu ${cfg.cpu} is still owned by cpu ${prev - 1}`);
    }
    m.pools[i] = pool;
    m.rec[i] = rec;
    m.tlb[i] = tlb;
    m.first[i] = first;
    m.nslots[i] = nslots;
    m.dataSlot[i] = slotPos;
    m.orig[i] = orig;
    return true;
  };
  const release = (m: Live) => {
    for (let i = 0; i < m.n; i++) {
      for (let s = m.first[i]!; s < m.first[i]! + m.nslots[i]!; s++) {
        const prev = Atomics.compareExchange(owners, ownerIndex(m.pools[i]!, s), id, 0);
        if (prev !== id) fail(`slot ${s} of a live mapping of cpu ${cfg.cpu} was owned by ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`}`);
      }
    }
  };
  /** The device side of entry i holds `want` (pat or ans) at sampled positions. */
  const checkBounce = (m: Live, i: number, want: Uint8Array, when: string) => {
    const data = m.pools[i]!.data;
    const t = m.tlb[i]! - m.pools[i]!.start;
    const size = m.len[i]!;
    const w = m.pat + m.off[i]! - m.off[0]!;
    for (let k = 0; k < samples + 2; k++) {
      const p = pos(size, k);
      if (data[t + p] !== want[w + p]) {
        fail(`${when}: bounce byte ${p} of a ${size}-byte ${DMA_DIRECTION_NAMES[m.dir]} mapping at slot ${m.first[i]} is ${data[t + p]}, expected ${want[w + p]}`);
        break;
      }
    }
  };

  const map = (b: number) => {
    const sg = sgShare > 0 && rng.float() < sgShare;
    const iommu = !sg && alignShare > 0 && rng.float() < alignShare;
    const allocMask = iommu ? cfg.allocAlignMasks![rng.below(cfg.allocAlignMasks!.length)]! : 0;
    const dir = dirOf();
    const n = sg ? 2 + rng.below(sgMax - 1) : 1;
    const base = cfg.regionOffset + b * slotBytes + GUARD + rng.below(PAGE_SIZE);
    const wantBlock = mayBlockShare > 0 && rng.float() < mayBlockShare;
    const attrs = wantBlock && !iommu && throttledLive === 0 ? DMA_ATTR_MAY_BLOCK : 0;
    const m: Live = {
      n, sgl: null, tlb: [], off: [], len: [], first: [], nslots: [], dir, pat: 0, iommu, throttled: false, dataSlot: [], orig: [],
      pools: [], rec: [],
    };
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = sizeOf();
      m.off.push(base + total);
      m.len.push(len);
      total += len;
    }
    m.pat = rng.below(patLen - total + 1);
    bytes.fill(GUARD_BYTE, base - GUARD, base);
    bytes.fill(GUARD_BYTE, base + total, base + total + GUARD);
    bytes.set(pat.subarray(m.pat, m.pat + total), base);

    let ok: boolean;
    if (sg) {
      const sgl = new ScatterList(n);
      for (let i = 0; i < n; i++) sgl.set(i, guest.addrOf(m.off[i]!), m.len[i]!);
      ok = dmaMapSgtable(mem, dev, sgl, n, dir, attrs) === n;
      m.sgl = sgl;
    } else {
      const orig = guest.addrOf(base);
      const tlb = iommu ? mem.tblMapSingle(dev, orig, m.len[0]!, allocMask, dir, 0) : dmaMapSingle(mem, dev, orig, m.len[0]!, dir, attrs);
      ok = tlb !== DMA_MAPPING_ERROR;
      m.tlb.push(tlb);
    }
    const used = mem.memUsed();
    if (used > res.maxUsedSeen) res.maxUsedSeen = used;
    probe.afterMap?.(ok);
    if (!ok) {
      res.mapFailures++;
      return;
    }
    res.maps++;
    let trusted = true;
    for (let i = 0; i < n; i++) {
      const tlb = sg ? m.sgl!.dmaAddress[i]! : m.tlb[0]!;
      trusted = claim(tlb, guest.addrOf(m.off[i]!), m.len[i]!, allocMask, m, i) && trusted;
    }
    if (!trusted) {
      // Unmapping an address we cannot place would only add noise; leave the mapping and stop here.
      return;
    }
    // [RFC] Our own mapping's flag, set by our map and cleared only by our unmap: stable while live.
    m.throttled = m.pools[0]!.throttled[m.dataSlot[0]!] !== 0;
    if (m.throttled) {
      throttledLive++;
      res.throttledMaps++;
    }
    probe.mapped?.(m);
    for (let i = 0; i < n; i++) {
      checkBounce(m, i, pat, 'after map');
      // The device writes its answer into FROM_DEVICE and BIDIRECTIONAL buffers.
      if (dir !== DMA_TO_DEVICE) {
        const t = m.tlb[i]! - m.pools[i]!.start;
        const w = m.pat + m.off[i]! - m.off[0]!;
        m.pools[i]!.data.set(ans.subarray(w, w + m.len[i]!), t);
      }
    }
    live[b] = m;
  };

  const unmap = (b: number) => {
    const m = live[b]!;
    const want = m.dir === DMA_TO_DEVICE ? pat : ans;
    for (let i = 0; i < m.n; i++) checkBounce(m, i, want, 'before unmap');
    release(m);
    probe.unmapping?.(m);
    if (m.sgl !== null) dmaUnmapSg(mem, dev, m.sgl, m.n, m.dir);
    else dmaUnmapSingle(mem, dev, m.tlb[0]!, m.len[0]!, m.dir);
    probe.unmapped?.();
    if (m.throttled) throttledLive--;
    res.unmaps++;
    for (let i = 0; i < m.n; i++) {
      const off = m.off[i]!;
      const size = m.len[i]!;
      const w = m.pat + off - m.off[0]!;
      for (let k = 0; k < samples + 2; k++) {
        const p = pos(size, k);
        if (bytes[off + p] !== want[w + p]) {
          fail(`after unmap: private byte ${p} of a ${size}-byte ${DMA_DIRECTION_NAMES[m.dir]} mapping is ${bytes[off + p]}, expected ${want[w + p]}`);
          break;
        }
      }
    }
    const start = m.off[0]!;
    const end = m.off[m.n - 1]! + m.len[m.n - 1]!;
    for (let g = 1; g <= GUARD; g++) {
      if (bytes[start - g] !== GUARD_BYTE || bytes[end + g - 1] !== GUARD_BYTE) {
        fail(`bytes outside a ${end - start}-byte ${DMA_DIRECTION_NAMES[m.dir]} mapping were written (guard byte ${g} before or after)`);
        break;
      }
    }
    live[b] = null;
  };

  let op = 0;
  for (; op < cfg.ops; op++) {
    if (probe.beforeOp !== undefined && !probe.beforeOp(op)) break;
    if (hook !== null) hook(P_EXERCISER_OP, op);
    const b = rng.below(live.length);
    if (live[b] === null) map(b);
    else unmap(b);
  }
  for (let b = 0; b < live.length; b++) {
    if (live[b] === null) continue;
    if (hook !== null) hook(P_EXERCISER_OP, op);
    unmap(b);
    op++;
  }
  res.ops = res.maps + res.mapFailures + res.unmaps;
  const t = mem.throttleStats.fields;
  res.throttleWaits = t[TSTAT_WAITS]!;
  res.throttleBoundViolations = t[TSTAT_BOUND_VIOLATIONS]!;
  return res;
}

/**
 * §18.1 and §18.9 for one live mapping: contiguous slots inside one segment and one area, outside no
 * segment-boundary window; bounce address with the original's min_align_mask bits; allocation start
 * on its alignment (legacy page alignment for ≥ PAGE_SIZE streaming maps without min_align_mask).
 */
function checkGeometry(
  pool: IoTlbPool, minAlignMask: number, tlb: number, orig: number, first: number, nslots: number,
  allocMask: number, allocSize: number, fail: (m: string) => void,
): void {
  const last = first + nslots - 1;
  if (Math.floor(first / IO_TLB_SEGSIZE) !== Math.floor(last / IO_TLB_SEGSIZE)) {
    fail(`mapping of slots ${first}..${last} crosses a segment boundary`);
  }
  if (Math.floor(first / pool.areaNslabs) !== Math.floor(last / pool.areaNslabs)) {
    fail(`mapping of slots ${first}..${last} crosses an area boundary (area_nslabs ${pool.areaNslabs})`);
  }
  if ((tlb & minAlignMask) !== (orig & minAlignMask)) {
    fail(`bounce address 0x${tlb.toString(16)} does not keep the min_align_mask 0x${minAlignMask.toString(16)} bits of 0x${orig.toString(16)}`);
  }
  let align = allocMask;
  if (align === 0 && minAlignMask === 0 && allocSize >= PAGE_SIZE) align = PAGE_SIZE - 1;
  align |= IO_TLB_SIZE - 1;
  const startAddr = pool.start + first * IO_TLB_SIZE;
  if ((startAddr & align) !== 0) {
    fail(`allocation at 0x${startAddr.toString(16)} (${allocSize} bytes) is not aligned to 0x${(align + 1).toString(16)}`);
  }
}
