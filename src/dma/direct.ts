// dma-direct over the swiotlb: the streaming DMA API a driver calls (reference §14). In a CoCo VM the
// allocator has force_bounce set, so every mapping bounces; otherwise only buffers the device cannot
// reach do.
//
// The per-device allocator lookup: every entry point works on dev->dma_io_tlb_mem (DmaDevice.dmaIoTlbMem,
// this thread's handle, which also carries the current CPU), as the kernel's swiotlb calls do. The
// `mem` argument is the thread's io_tlb_default_mem, what swiotlb_dev_init would have pointed a device
// at: it is used for a device whose pointer was never set (benchmarks, tests). A device with a
// restricted DMA pool (swiotlb/restricted.ts) points at that pool's own io_tlb_mem, so its maps,
// unmaps, syncs and swiotlb_find_pool searches go to that allocator's pools and counters only.
import { assert } from '../errors.js';
import { formatPhysAddr } from '../log/events.js';
import {
  DMA_ATTR_MAY_BLOCK, DMA_ATTR_SKIP_CPU_SYNC, DMA_MAPPING_ERROR, DMA_NONE, EIO, type DmaDirection,
} from '../swiotlb/constants.js';
import { MEM_ADDR_OVERFLOW_WARNED, POOL_KIND_TRANSIENT, STAT_MAP_FAIL_NOT_CAPABLE } from '../swiotlb/layout.js';
import type { IoTlbMem } from '../swiotlb/mem.js';
import { M_SG_UNMAP_ORDER, M_TRANSIENT_FREE_EARLY, mutant } from '../swiotlb/mutants.js';
import type { DmaDevice } from './device.js';

/** dev->dma_io_tlb_mem: the device's own allocator, else the thread's default one. */
export function ioTlbMemOf(mem: IoTlbMem, dev: DmaDevice): IoTlbMem {
  return dev.dmaIoTlbMem ?? mem;
}

/**
 * The DMA API's tracepoints (include/trace/events/dma.h, swiotlb.h): called where the kernel calls
 * trace_dma_map_phys & co., at the API layer (dma_map_phys, __dma_map_sg_attrs, dma_unmap_*), not for
 * each entry dma-direct maps inside an SG list. One tracer per thread (module state is per thread);
 * null, the default, costs one comparison per call. npm run vm --trace-file installs one (src/trace/writer.ts).
 */
export interface DmaTracepoints {
  mapPhys(dev: string, phys: number, dma: number, size: number, dir: number, attrs: number): void;
  unmapPhys(dev: string, dma: number, size: number, dir: number, attrs: number): void;
  mapSg(dev: string, phys: ArrayLike<number>, dma: ArrayLike<number>, lens: ArrayLike<number>, nents: number, ents: number, dir: number, attrs: number): void;
  mapSgErr(dev: string, phys: ArrayLike<number>, nents: number, err: number, dir: number, attrs: number): void;
  unmapSg(dev: string, phys: ArrayLike<number>, nents: number, dir: number, attrs: number): void;
  bounced(dev: string, dmaMask: number, devAddr: number, size: number): void;
}
let tracer: DmaTracepoints | null = null;

/** Install (or, with null, remove) this thread's tracer. */
export function setDmaTracer(t: DmaTracepoints | null): void {
  tracer = t;
}

/** dma_capable: can the device address [addr, addr + size)? */
export function dmaCapable(dev: DmaDevice, addr: number, size: number): boolean {
  if (addr === DMA_MAPPING_ERROR) return false;
  return addr + size - 1 <= dev.dmaMask;
}

/** is_swiotlb_force_bounce(dev): dev->dma_io_tlb_mem->force_bounce (always set for a restricted pool). */
export function isSwiotlbForceBounce(mem: IoTlbMem, dev?: DmaDevice): boolean {
  return (dev === undefined ? mem : ioTlbMemOf(mem, dev)).forceBounce;
}

/**
 * [RFC 3/7] dma_recommend_may_block: should a driver pass DMA_ATTR_MAY_BLOCK? True iff throttling is
 * built in (enabled on the allocator) and the device is force-bounced (§15.7). dma-direct only: IOMMU
 * and other dma_ops devices, which this emulator does not model, would get false.
 */
export function dmaRecommendMayBlock(mem: IoTlbMem, dev: DmaDevice): boolean {
  const m = ioTlbMemOf(mem, dev);
  return m.throttleEnabled && m.forceBounce;
}

/** dma_max_mapping_size: the swiotlb limit for force-bounced devices, unlimited otherwise. */
export function dmaMaxMappingSize(mem: IoTlbMem, dev: DmaDevice): number {
  mem = ioTlbMemOf(mem, dev);
  return mem.forceBounce && mem.nslabs > 0 ? mem.maxMappingSize(dev) : Number.MAX_SAFE_INTEGER;
}

/** swiotlb_map: bounce, then check the bounce address is reachable (undoing the mapping if not). */
export function swiotlbMap(mem: IoTlbMem, dev: DmaDevice, paddr: number, size: number, dir: DmaDirection, attrs: number): number {
  mem = ioTlbMemOf(mem, dev);
  // trace_swiotlb_bounced(dev, phys_to_dma(dev, paddr), size): before the slot search, so also for maps that fail.
  if (tracer !== null) tracer.bounced(dev.name, dev.dmaMask, paddr, size);
  const tlbAddr = mem.tblMapSingle(dev, paddr, size, 0, dir, attrs);
  if (tlbAddr === DMA_MAPPING_ERROR) return DMA_MAPPING_ERROR;
  const dmaAddr = tlbAddr; // phys_to_dma_unencrypted: the emulated bus has no offset and no C-bit
  if (!dmaCapable(dev, dmaAddr, size)) {
    mem.tblUnmapSingle(dev, tlbAddr, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
    mem.stats[STAT_MAP_FAIL_NOT_CAPABLE]!++;
    if (mem.header[MEM_ADDR_OVERFLOW_WARNED] === 0) {
      mem.warnOnce(MEM_ADDR_OVERFLOW_WARNED, `swiotlb addr ${formatPhysAddr(dmaAddr)}+${size} overflow (mask ${dev.dmaMask.toString(16)}, bus limit 0).`, dev);
    }
    return DMA_MAPPING_ERROR;
  }
  return dmaAddr;
}

/** dma_map_single / dma_map_page_attrs (dma_map_phys): dma_direct_map_page, then the tracepoint, traced whatever the result. */
export function dmaMapSingle(mem: IoTlbMem, dev: DmaDevice, paddr: number, size: number, dir: DmaDirection, attrs = 0): number {
  const dma = directMapPage(mem, dev, paddr, size, dir, attrs);
  if (tracer !== null) tracer.mapPhys(dev.name, paddr, dma, size, dir, attrs);
  return dma;
}

/** dma_direct_map_page. */
function directMapPage(mem: IoTlbMem, dev: DmaDevice, paddr: number, size: number, dir: DmaDirection, attrs: number): number {
  assert(dir !== DMA_NONE, 'dma_map with DMA_NONE is a BUG');
  mem = ioTlbMemOf(mem, dev);
  if (mem.forceBounce) return swiotlbMap(mem, dev, paddr, size, dir, attrs);
  if (dmaCapable(dev, paddr, size)) return paddr;
  if (mem.nslabs > 0) return swiotlbMap(mem, dev, paddr, size, dir, attrs);
  return DMA_MAPPING_ERROR;
}

/** dma_unmap_single (dma_unmap_phys): the tracepoint, then dma_direct_unmap_page. */
export function dmaUnmapSingle(mem: IoTlbMem, dev: DmaDevice, dmaAddr: number, size: number, dir: DmaDirection, attrs = 0): void {
  if (tracer !== null) tracer.unmapPhys(dev.name, dmaAddr, size, dir, attrs);
  directUnmapPage(mem, dev, dmaAddr, size, dir, attrs);
}

/** dma_direct_unmap_page: CPU sync (copy back) unless SKIP_CPU_SYNC, then release without a second copy. */
function directUnmapPage(mem: IoTlbMem, dev: DmaDevice, dmaAddr: number, size: number, dir: DmaDirection, attrs: number): void {
  mem = ioTlbMemOf(mem, dev);
  if (mutant === M_TRANSIENT_FREE_EARLY && mem.findPool(dev, dmaAddr)?.kind === POOL_KIND_TRANSIENT) { // stress-harness mutant only
    mem.tblUnmapSingle(dev, dmaAddr, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC); // deleted (and maybe freed) first
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0) mem.syncSingleForCpu(dev, dmaAddr, size, dir);
    return;
  }
  if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0) mem.syncSingleForCpu(dev, dmaAddr, size, dir);
  mem.tblUnmapSingle(dev, dmaAddr, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
}

/** dma_sync_single_for_cpu: make the device's writes visible to the CPU (bounce -> original). */
export function dmaSyncSingleForCpu(mem: IoTlbMem, dev: DmaDevice, dmaAddr: number, size: number, dir: DmaDirection): void {
  ioTlbMemOf(mem, dev).syncSingleForCpu(dev, dmaAddr, size, dir);
}

/** dma_sync_single_for_device: hand the CPU's writes to the device (original -> bounce). */
export function dmaSyncSingleForDevice(mem: IoTlbMem, dev: DmaDevice, dmaAddr: number, size: number, dir: DmaDirection): void {
  ioTlbMemOf(mem, dev).syncSingleForDevice(dev, dmaAddr, size, dir);
}

/**
 * A scatter-gather list with room for `capacity` entries, sized up front so mapping allocates
 * nothing. Entry i: (orig address, length) in, (dma address, dma length) out.
 */
export class ScatterList {
  readonly origAddr: Float64Array;
  readonly length: Int32Array;
  readonly dmaAddress: Float64Array;
  readonly dmaLength: Int32Array;
  nents = 0;

  constructor(readonly capacity: number) {
    this.origAddr = new Float64Array(capacity);
    this.length = new Int32Array(capacity);
    this.dmaAddress = new Float64Array(capacity).fill(DMA_MAPPING_ERROR);
    this.dmaLength = new Int32Array(capacity);
  }

  /** Set entry i (sg_set_buf). */
  set(i: number, origAddr: number, length: number): void {
    assert(i < this.capacity, 'scatterlist entry within capacity');
    this.origAddr[i] = origAddr;
    this.length[i] = length;
    if (i >= this.nents) this.nents = i + 1;
  }

  /**
   * Describe [addr, addr + total) as entries of at most `maxSeg` bytes (how a block driver splits a
   * request at dma_max_mapping_size). Returns the entry count.
   */
  fill(addr: number, total: number, maxSeg: number): number {
    const n = Math.ceil(total / maxSeg);
    assert(n <= this.capacity, 'request fits the scatterlist');
    for (let i = 0; i < n; i++) {
      this.origAddr[i] = addr + i * maxSeg;
      this.length[i] = Math.min(maxSeg, total - i * maxSeg);
    }
    this.nents = n;
    return n;
  }
}

/**
 * dma_direct_map_sg: map each entry independently, in list order. If entry i fails, entries
 * 0..i-1 are unmapped with SKIP_CPU_SYNC (no copy back) and the result is -EIO; otherwise nents.
 * [RFC 2/7] MAY_BLOCK is honoured for entry 0 only: once entry 0 is mapped it is cleared for the rest,
 * so only entry 0 can wait or hold throttle_sem, and its hold covers the whole list (§15.6).
 */
export function dmaMapSgtable(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection, attrs = 0): number {
  const traced = attrs;
  for (let i = 0; i < nents; i++) {
    const dma = directMapPage(mem, dev, sgl.origAddr[i]!, sgl.length[i]!, dir, attrs);
    if (dma === DMA_MAPPING_ERROR) {
      directUnmapSg(mem, dev, sgl, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      if (tracer !== null) tracer.mapSgErr(dev.name, sgl.origAddr, nents, -EIO, dir, traced);
      return -EIO;
    }
    sgl.dmaAddress[i] = dma;
    sgl.dmaLength[i] = sgl.length[i]!;
    if (i === 0) attrs &= ~DMA_ATTR_MAY_BLOCK;
  }
  if (tracer !== null) tracer.mapSg(dev.name, sgl.origAddr, sgl.dmaAddress, sgl.dmaLength, nents, nents, dir, traced);
  return nents;
}

/** dma_map_sg_attrs: like dma_map_sgtable, but every error is a return value of 0. */
export function dmaMapSg(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection, attrs = 0): number {
  const r = dmaMapSgtable(mem, dev, sgl, nents, dir, attrs);
  return r < 0 ? 0 : r;
}

/**
 * dma_direct_unmap_sg, [RFC 2/7] order: entries 1..nents-1 in order, then entry 0, which may hold
 * throttle_sem for the whole list, so that it is released only after all the list's bounce memory is
 * free (§15.6). Error unwinding in dmaMapSgtable goes through the same order (directUnmapSg).
 */
export function dmaUnmapSg(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection, attrs = 0): void {
  if (tracer !== null) tracer.unmapSg(dev.name, sgl.origAddr, nents, dir, attrs);
  directUnmapSg(mem, dev, sgl, nents, dir, attrs);
}

/** dma_direct_unmap_sg (the map's error unwinding calls it directly: not traced). */
function directUnmapSg(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection, attrs: number): void {
  const entry0First = mutant === M_SG_UNMAP_ORDER; // stress-harness mutant only (src/swiotlb/mutants.ts)
  for (let i = entry0First ? 0 : 1; i < nents; i++) {
    directUnmapPage(mem, dev, sgl.dmaAddress[i]!, sgl.dmaLength[i]!, dir, attrs);
    sgl.dmaAddress[i] = DMA_MAPPING_ERROR;
  }
  if (nents > 0 && !entry0First) {
    directUnmapPage(mem, dev, sgl.dmaAddress[0]!, sgl.dmaLength[0]!, dir, attrs);
    sgl.dmaAddress[0] = DMA_MAPPING_ERROR;
  }
}

/** dma_sync_sg_for_cpu: every entry, by its own length. */
export function dmaSyncSgForCpu(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection): void {
  mem = ioTlbMemOf(mem, dev);
  for (let i = 0; i < nents; i++) mem.syncSingleForCpu(dev, sgl.dmaAddress[i]!, sgl.length[i]!, dir);
}

/** dma_sync_sg_for_device: every entry, by its own length. */
export function dmaSyncSgForDevice(mem: IoTlbMem, dev: DmaDevice, sgl: ScatterList, nents: number, dir: DmaDirection): void {
  mem = ioTlbMemOf(mem, dev);
  for (let i = 0; i < nents; i++) mem.syncSingleForDevice(dev, sgl.dmaAddress[i]!, sgl.length[i]!, dir);
}
