// Restricted DMA pools (CONFIG_DMA_RESTRICTED_POOL, mainline since v5.15; reference §13): a
// device-tree "restricted-dma-pool" reserved-memory region becomes a second io_tlb_mem that only the
// devices assigned to it use. Protected VMs on Arm (pKVM) give virtio devices one, so that a device
// can reach only that region. What the kernel does, and where this module does it:
//
//  - boot, reserved memory (drivers/of/of_reserved_mem.c): a node with a `size` and no `reg` is
//    allocated by memblock anywhere in RAM (memblock_phys_alloc_range(size, SMP_CACHE_BYTES, 0,
//    MEMBLOCK_ALLOC_ANYWHERE), top-down), before swiotlb_init reserves the default pool;
//    rmem_swiotlb_setup prints "Reserved memory: created restricted DMA pool at %pa, size %ld MiB",
//    then of_reserved_mem prints "initialized node ..." and the region's range (reserveRestrictedPools);
//  - probe (rmem_swiotlb_device_init, the first device of the region): the region's pages are
//    decrypted (set_memory_decrypted: shared with the host), one io_tlb_pool of size >> IO_TLB_SHIFT
//    slots with ONE area is initialised, mem->force_bounce and mem->for_alloc are set, can_grow never
//    is (so a full restricted pool never schedules growth nor tries a transient pool, even with
//    CONFIG_SWIOTLB_DYNAMIC), and dev->dma_io_tlb_mem points at it; of_reserved_mem_device_init_by_idx
//    prints "assigned reserved memory node %s" (createRestrictedMem, rmemSwiotlbDeviceInit).
//    "Restricted DMA pool must be accessible within the linear mapping." is for highmem, which
//    x86-64 and arm64 do not have: it is never printed here.
//  - every swiotlb call of the device then goes to its own io_tlb_mem: the per-device lookup lives in
//    the DMA layer (dma/direct.ts ioTlbMemOf), the search and release in mem.ts are the same code,
//    called on another allocator. Its counters (total_used, used_hiwater, the area's used) are that
//    allocator's, and its "swiotlb buffer is full" message gives that allocator's totals.
//
// Emulator choices, stated: the flag gives each device its own region (the kernel lets several
// devices share one; only one restricted-dma-pool per device is allowed, of_dma_set_restricted_buffer);
// the region is named restricted-dma-<device>; its bytes are the pool's own SharedArrayBuffer, as
// the default pool's are, and the device thread's bounce window is that region alone (a restricted
// device cannot reach the default pool). Coherent allocations (dma_alloc_coherent -> swiotlb_alloc,
// for_alloc) are not routed by the emulator: its drivers allocate no coherent memory.
import { InputError } from '../errors.js';
import type { GuestPhysMem } from '../memory/phys.js';
import { formatPhysAddr } from '../log/events.js';
import { quote } from '../util/quote.js';
import { formatBytes, parseSize } from '../util/units.js';
import { IO_TLB_MAX_SIZE, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE } from './constants.js';
import { MEM_ENCRYPTION_WARNED, POOL_KIND_RESTRICTED, STATS_FIELDS, STATS_STRIDE } from './layout.js';
import { IoTlbMem, type IoTlbMemAttachOptions, type IoTlbMemShared } from './mem.js';
import type { DmaDevice } from '../dma/device.js';

/** One `--restricted-pool DEV=SIZE`: the device and the region's size in bytes. */
export interface RestrictedPoolSpec {
  device: string;
  bytes: number;
}

/** Memory nodes' allocation alignment when the node has no `alignment` (early_init_dt_alloc_reserved_memory_arch: SMP_CACHE_BYTES). */
export const SMP_CACHE_BYTES = 64;
/** Where memblock may place a node with no alloc-ranges: MEMBLOCK_ALLOC_ANYWHERE. */
const MEMBLOCK_ALLOC_ANYWHERE = Number.MAX_SAFE_INTEGER;

export const RESTRICTED_POOL_FORM = 'DEV=SIZE[,DEV=SIZE...]: a device of the run and a size, a whole number of 4 KiB pages up to 1G, e.g. eth0=1M';

/**
 * Parse --restricted-pool values (each a DEV=SIZE or a comma list of them) for a run whose devices
 * are `devices`. Size rules, as the reserved-memory node and rmem_swiotlb_device_init take it: the
 * node's size is bytes, the pool gets size >> IO_TLB_SHIFT slots and its size >> PAGE_SHIFT pages are
 * decrypted, so a size that is not whole pages would leave slots the host cannot see; accepted: a
 * whole number of 4 KiB pages (at least one: two slots), at most IO_TLB_MAX_SIZE (1 GiB, the
 * emulator's largest pool). Whether the region fits guest memory is memblock's answer, at boot.
 */
export function parseRestrictedPools(values: readonly string[], what: string, devices: readonly string[]): RestrictedPoolSpec[] {
  const out: RestrictedPoolSpec[] = [];
  const expected = `expected ${RESTRICTED_POOL_FORM} (devices: ${devices.join(', ')})`;
  for (const value of values) {
    if (value.trim() === '') continue;
    for (const item of value.split(',')) {
      const eq = item.indexOf('=');
      const device = (eq < 0 ? item : item.slice(0, eq)).trim();
      if (eq < 0 || device === '') throw new InputError('EBADFLAG', `${what}: ${quote(item)} is not valid; ${expected}`);
      if (!devices.includes(device)) throw new InputError('EBADFLAG', `${what}: ${quote(device)} is not a device of the run; ${expected}`);
      if (out.some((p) => p.device === device)) {
        throw new InputError('EBADFLAG', `${what}: ${device} is given a restricted pool twice (a device has at most one restricted-dma-pool region); ${expected}`);
      }
      const text = item.slice(eq + 1);
      const bytes = parseSize(text, `${what} ${device}`, 1);
      if (bytes % PAGE_SIZE !== 0 || bytes > IO_TLB_MAX_SIZE) {
        throw new InputError('EBADSIZE', `${what} ${device}: ${quote(text.trim())} is not valid; expected a whole number of 4 KiB pages from 4k to 1G (the region's pages are decrypted whole), e.g. 1M`);
      }
      out.push({ device, bytes });
    }
  }
  return out;
}

/** The emulator's name for a device's reserved-memory node (rmem->name, and its debugfs directory). */
export function restrictedNodeName(device: string): string {
  return `restricted-dma-${device}`;
}

/** The kernel's lines, verbatim (the prefixes are the pr_fmt of each file, or the device's for dev_info). */
export const restrictedText = {
  /** rmem_swiotlb_setup (kernel/dma/swiotlb.c, pr_fmt "software IO TLB: "): size / SZ_1M, rounded down. */
  created: (base: number, bytes: number): string =>
    `software IO TLB: Reserved memory: created restricted DMA pool at ${formatPhysAddr(base)}, size ${Math.floor(bytes / 2 ** 20)} MiB`,
  /** __reserved_mem_init_node (drivers/of/of_reserved_mem.c, pr_fmt "OF: reserved mem: "). */
  initialized: (name: string): string => `OF: reserved mem: initialized node ${name}, compatible id restricted-dma-pool`,
  /** fdt_init_reserved_mem: the region's inclusive range, size in KiB, map, non-reusable. */
  range: (base: number, bytes: number, name: string): string =>
    `OF: reserved mem: ${formatPhysAddr(base)}..${formatPhysAddr(base + bytes - 1)} (${Math.floor(bytes / 1024)} KiB) map non-reusable ${name}`,
  /** __reserved_mem_alloc_size when memblock has no room (pr_err). */
  allocFailed: (name: string, bytes: number): string =>
    `OF: reserved mem: failed to allocate memory for node '${name}': size ${Math.floor(bytes / 2 ** 20)} MiB`,
  /** of_reserved_mem_device_init_by_idx, dev_info once rmem_swiotlb_device_init succeeded. */
  assigned: (device: string, name: string): string => `${device}: assigned reserved memory node ${name}`,
} as const;

/** A reserved region, placed at boot. */
export interface RestrictedRegion {
  spec: RestrictedPoolSpec;
  name: string;
  base: number;
}

/**
 * fdt_init_reserved_mem for the restricted-dma-pool nodes, in memblock time (before the default
 * pool is reserved): each region's address, and the kernel's lines. A region memblock cannot place
 * is an InputError with the kernel's pr_err text and what to change.
 */
export function reserveRestrictedPools(phys: GuestPhysMem, specs: readonly RestrictedPoolSpec[]): { regions: RestrictedRegion[]; bootLines: string[] } {
  const regions: RestrictedRegion[] = [];
  const bootLines: string[] = [];
  for (const spec of specs) {
    const name = restrictedNodeName(spec.device);
    let base: number;
    try {
      base = phys.memblockAllocLow(spec.bytes, SMP_CACHE_BYTES, MEMBLOCK_ALLOC_ANYWHERE);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      throw new InputError('EBADSIZE', `--restricted-pool ${spec.device}: ${restrictedText.allocFailed(name, spec.bytes)}: a ${formatBytes(spec.bytes)} region does not fit the guest's free RAM; use a smaller pool or more --mem`);
    }
    regions.push({ spec, name, base });
    bootLines.push(restrictedText.created(base, spec.bytes), restrictedText.initialized(name), restrictedText.range(base, spec.bytes, name));
  }
  return { regions, bootLines };
}

/** What a thread needs to attach a restricted pool's allocator, structured-clonable. */
export interface RestrictedMemShared {
  device: string;
  name: string;
  mem: IoTlbMemShared;
  /** Per-vCPU statistics blocks of this allocator (STATS_FIELDS float64s at cpu * STATS_STRIDE), apart from the default allocator's. */
  stats: SharedArrayBuffer;
}

/** A restricted pool's io_tlb_mem, created (the main thread's handle). */
export interface RestrictedMem {
  device: string;
  name: string;
  base: number;
  bytes: number;
  mem: IoTlbMem;
  stats: SharedArrayBuffer;
  shared: RestrictedMemShared;
}

export interface RestrictedMemOptions {
  /** Threads with a statistics block (the vCPUs). */
  cpus: number;
  lockSpins?: number;
  parkTimeoutMs?: number;
}

/**
 * rmem_swiotlb_device_init for the region's first device: set_memory_decrypted over its pages (the
 * bytes are a SharedArrayBuffer every thread holds: shared with the host), then an io_tlb_mem of one
 * pool of size >> IO_TLB_SHIFT slots in ONE area, force_bounce set, can_grow never set, no dynamic
 * region (no growth worker, no transient pools), no throttling. Its debugfs files are
 * /sys/kernel/debug/swiotlb/<name>/ (swiotlb_create_debugfs_files(mem, rmem->name)).
 */
export function createRestrictedMem(region: RestrictedRegion, opts: RestrictedMemOptions): RestrictedMem {
  const nslabs = region.spec.bytes >> IO_TLB_SHIFT;
  const mem = IoTlbMem.create({
    nslabs, nareas: 1, start: region.base, forceBounce: true, memEncrypt: true, canGrow: false, poolKind: POOL_KIND_RESTRICTED,
    ...(opts.lockSpins !== undefined ? { lockSpins: opts.lockSpins } : {}),
    ...(opts.parkTimeoutMs !== undefined ? { parkTimeoutMs: opts.parkTimeoutMs } : {}),
  });
  // pr_warn_once: "Memory encryption is active ..." is printed once per boot, with the default pool's lines.
  Atomics.store(mem.header, MEM_ENCRYPTION_WARNED, 1);
  const stats = new SharedArrayBuffer(Math.max(1, opts.cpus) * STATS_STRIDE * 8);
  const shared: RestrictedMemShared = { device: region.spec.device, name: region.name, mem: mem.shared(), stats };
  return { device: region.spec.device, name: region.name, base: region.base, bytes: nslabs * IO_TLB_SIZE, mem, stats, shared };
}

/** Attach a restricted pool's allocator in a vCPU thread, with that thread's statistics block of it. */
export function attachRestrictedMem(r: RestrictedMemShared, cpu: number, opts: Omit<IoTlbMemAttachOptions, 'cpu' | 'stats'>): IoTlbMem {
  return IoTlbMem.attach(r.mem, { ...opts, cpu, stats: new Float64Array(r.stats, cpu * STATS_STRIDE * 8, STATS_FIELDS) });
}

/** rmem_swiotlb_device_init's last step: dev->dma_io_tlb_mem = mem (the DMA layer's lookup then finds it). */
export function rmemSwiotlbDeviceInit(dev: DmaDevice, mem: IoTlbMem): void {
  dev.dmaIoTlbMem = mem;
}
