// The parts of struct device that the DMA API and swiotlb look at.
import { InputError } from '../errors.js';
import { getMaxSlots, isPowerOfTwo } from '../swiotlb/constants.js';
import type { IoTlbMem } from '../swiotlb/mem.js';

/** dma_get_seg_boundary's value for PCI devices (the PCI core sets 0xFFFFFFFF). */
export const PCI_SEG_BOUNDARY_MASK = 0xffffffff;
/** A device without a boundary (ULONG_MAX). */
export const NO_SEG_BOUNDARY = Number.MAX_SAFE_INTEGER;
/** DMA_BIT_MASK(64), as far as a JS number holds it. */
export const DMA_BIT_MASK_64 = Number.MAX_SAFE_INTEGER;

export interface DmaDeviceOptions {
  /** dma_parms min_align_mask; NVMe and storvsc use 0xFFF. Default 0. */
  minAlignMask?: number;
  /** dma_get_seg_boundary; default PCI's 0xFFFFFFFF. */
  segBoundaryMask?: number;
  /** min_not_zero(dma_mask, bus_dma_limit); default 64-bit. */
  dmaMask?: number;
}

export class DmaDevice {
  readonly minAlignMask: number;
  readonly segBoundaryMask: number;
  readonly dmaMask: number;
  /** get_max_slots(seg_boundary_mask): slots per boundary window, computed once. */
  readonly maxSlots: number;
  /** Dynamic swiotlb, this thread's cache: the device's shared record (dma_io_tlb_pools, dma_io_tlb_lock), -1 until first use. */
  ioTlbRecord = -1;
  /** Dynamic swiotlb, this thread's cache of dev->dma_uses_io_tlb once it is true (it is never reset). */
  ioTlbUsed = false;
  /**
   * dev->dma_io_tlb_mem: the allocator every swiotlb call for this device goes to (this thread's
   * handle on it). swiotlb_dev_init points it at io_tlb_default_mem, rmem_swiotlb_device_init at a
   * restricted DMA pool's own io_tlb_mem. null until one of them ran: the DMA layer then uses the
   * default allocator its caller passes (dma/direct.ts ioTlbMemOf).
   */
  dmaIoTlbMem: IoTlbMem | null = null;

  constructor(readonly name: string, opts: DmaDeviceOptions = {}) {
    this.minAlignMask = opts.minAlignMask ?? 0;
    this.segBoundaryMask = opts.segBoundaryMask ?? PCI_SEG_BOUNDARY_MASK;
    this.dmaMask = opts.dmaMask ?? DMA_BIT_MASK_64;
    // Masks are low-bit masks (2^k - 1); the bit arithmetic of the search relies on it.
    for (const [what, m] of [['min_align_mask', this.minAlignMask], ['seg_boundary_mask', this.segBoundaryMask]] as const) {
      if (!Number.isSafeInteger(m) || m < 0 || (m !== NO_SEG_BOUNDARY && !isPowerOfTwo(m + 1))) {
        throw new InputError('EBADMASK', `${name}: ${what} 0x${m.toString(16)} is not of the form 2^k-1`);
      }
    }
    this.maxSlots = getMaxSlots(this.segBoundaryMask);
    if (this.minAlignMask >= 2 ** 31) {
      throw new InputError('EBADMASK', `${name}: min_align_mask 0x${this.minAlignMask.toString(16)} is too large; expected at most 0x7fffffff`);
    }
  }
}

/** swiotlb_dev_init: the device's allocator is io_tlb_default_mem (`mem`, this thread's handle on it). */
export function swiotlbDevInit(dev: DmaDevice, mem: IoTlbMem): void {
  dev.dmaIoTlbMem = mem;
}
