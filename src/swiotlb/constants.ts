// The kernel's swiotlb and DMA-API constants, under the kernel's names (include/linux/swiotlb.h,
// include/linux/dma-mapping.h, include/linux/dma-direction.h).

/** log2 of the slot size. */
export const IO_TLB_SHIFT = 11;
/** One slot ("slab"): 2 KiB. */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** Slots per segment; no allocation crosses a segment, so the largest bounce buffer is 256 KiB. */
export const IO_TLB_SEGSIZE = 128;
/** The default pool: 64 MiB. */
export const IO_TLB_DEFAULT_SIZE = 64 * 1024 * 1024;
/** Smallest pool worth creating: 1 MiB. */
export const IO_TLB_MIN_SLABS = (1024 * 1024) >> IO_TLB_SHIFT;
/** The largest static pool this emulator builds (the CoCo heuristic's cap): 1 GiB. */
export const IO_TLB_MAX_SIZE = 1024 * 1024 * 1024;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const SLABS_PER_PAGE = PAGE_SIZE >> IO_TLB_SHIFT;

/** "No original address" marker in a slot (the kernel's all-ones INVALID_PHYS_ADDR). */
export const INVALID_PHYS_ADDR = -1;
/** Failure return of the map calls (the kernel's all-ones DMA_MAPPING_ERROR). */
export const DMA_MAPPING_ERROR = -1;

/** enum dma_data_direction. */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
export type DmaDirection = typeof DMA_BIDIRECTIONAL | typeof DMA_TO_DEVICE | typeof DMA_FROM_DEVICE | typeof DMA_NONE;

export const DMA_DIRECTION_NAMES = ['DMA_BIDIRECTIONAL', 'DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_NONE'] as const;

/** DMA attributes (unsigned long attrs bits). */
export const DMA_ATTR_WEAK_ORDERING = 1 << 1;
export const DMA_ATTR_WRITE_COMBINE = 1 << 2;
export const DMA_ATTR_NO_KERNEL_MAPPING = 1 << 4;
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;
export const DMA_ATTR_FORCE_CONTIGUOUS = 1 << 6;
export const DMA_ATTR_ALLOC_SINGLE_PAGES = 1 << 7;
export const DMA_ATTR_NO_WARN = 1 << 8;
export const DMA_ATTR_PRIVILEGED = 1 << 9;
/** [RFC] swiotlb throttling: the caller may sleep, so the map may wait for bounce space. */
export const DMA_ATTR_MAY_BLOCK = 1 << 10;

/** -EIO, returned by dma_map_sgtable-style calls. */
export const EIO = 5;

/** nr_slots(bytes): slots needed for `bytes`. */
export function nrSlots(bytes: number): number {
  return Math.ceil(bytes / IO_TLB_SIZE);
}

/** io_tlb_offset(i): position of slot i inside its segment. */
export function ioTlbOffset(i: number): number {
  return i & (IO_TLB_SEGSIZE - 1);
}

/** Where the benchmarks, the stress harness and the tests place a pool: 2 GiB, page-aligned, below 4 GiB like the CoCo pool. */
export const POOL_START = 0x8000_0000;

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

export function roundupPowOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

/** ALIGN(x, a) for a power-of-two or any positive a. */
export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** get_max_slots: slots per boundary window; ULONG_MAX (or any mask beyond 2^52) has no boundary. */
export function getMaxSlots(boundaryMask: number): number {
  if (boundaryMask >= 2 ** 52) return 2 ** (53 - IO_TLB_SHIFT);
  return Math.floor(boundaryMask / IO_TLB_SIZE) + 1;
}
