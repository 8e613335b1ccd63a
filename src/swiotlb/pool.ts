// io_tlb_pool: one contiguous bounce region, its areas and its slot metadata, as views over the
// pool's SharedArrayBuffers (layout.ts). Creating a pool initialises it (swiotlb_init_io_tlb_pool);
// attaching rebuilds the views in another thread without touching the contents.
import { assert } from '../errors.js';
import { CopyRegion } from '../memory/copy.js';
import { INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SIZE, PAGE_SIZE, ioTlbOffset, isPowerOfTwo } from './constants.js';
import {
  AREA_INTS, AREA_POOL_READY, AREA_USED, AREA_USED_HIWATER, type PoolKind, areasBytes, dataBytes, slotAllocSizeOffset,
  slotListOffset, slotOrigAddrOffset, slotPadSlotsOffset, slotThrottledOffset, slotsBytes,
} from './layout.js';

/**
 * The SharedArrayBuffers of one pool; with its table entry in the header, all a thread needs. The
 * default pool owns its three SABs (no offsets). A dynamic or transient pool lives inside regions
 * shared from boot: its areas and slots in a metadata arena, its bounce data in the decrypted arena
 * (memory/arena.ts), at the given byte offsets.
 */
export interface IoTlbPoolShared {
  areas: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  data: SharedArrayBuffer;
  areasOffset?: number;
  slotsOffset?: number;
  dataOffset?: number;
}

/** Geometry of a pool, as recorded in the allocator's pool table. */
export interface IoTlbPoolDesc {
  start: number;
  nslabs: number;
  nareas: number;
  kind: PoolKind;
}

export class IoTlbPool {
  readonly start: number;
  /** Exclusive end address. */
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  /** nslabs / nareas; trailing slots beyond nareas * area_nslabs are never searched. */
  readonly areaNslabs: number;
  readonly kind: PoolKind;
  readonly shared: IoTlbPoolShared;

  /** Area records, AREA_INTS each (layout.ts AREA_*). */
  readonly areas: Int32Array;
  readonly list: Uint16Array;
  readonly padSlots: Uint8Array;
  readonly throttled: Uint8Array;
  /** Unsigned, wrapping like the kernel's size_t: see invariant 10 of the reference. */
  readonly allocSize: Uint32Array;
  readonly origAddr: Float64Array;
  /** The bounce buffers: shared (decrypted) memory that devices may read and write. */
  readonly data: Uint8Array;
  /** `data` as the bounce copy names it (memory/copy.ts). */
  readonly dataRegion: CopyRegion;

  constructor(desc: IoTlbPoolDesc, shared: IoTlbPoolShared) {
    assert(desc.nslabs > 0 && desc.nareas > 0, 'a pool has slots and areas');
    assert(isPowerOfTwo(desc.nareas), 'pool.nareas is a power of two');
    assert(desc.start % PAGE_SIZE === 0, 'a pool starts on a page boundary');
    const ao = shared.areasOffset;
    const so = shared.slotsOffset ?? 0;
    const dof = shared.dataOffset;
    if (ao === undefined) assert(shared.areas.byteLength === areasBytes(desc.nareas), 'area region matches nareas');
    else assert(ao % 8 === 0 && ao + areasBytes(desc.nareas) <= shared.areas.byteLength, 'area records lie inside their region');
    if (shared.slotsOffset === undefined) assert(shared.slots.byteLength === slotsBytes(desc.nslabs), 'slot region matches nslabs');
    else assert(so % 8 === 0 && so + slotsBytes(desc.nslabs) <= shared.slots.byteLength, 'slot metadata lies inside its region');
    if (dof === undefined) assert(shared.data.byteLength === dataBytes(desc.nslabs), 'data region matches nslabs');
    else assert(dof + dataBytes(desc.nslabs) <= shared.data.byteLength, 'bounce data lies inside its region');
    this.start = desc.start;
    this.nslabs = desc.nslabs;
    this.end = desc.start + desc.nslabs * IO_TLB_SIZE;
    this.nareas = desc.nareas;
    this.areaNslabs = Math.floor(desc.nslabs / desc.nareas);
    this.kind = desc.kind;
    this.shared = shared;
    const n = desc.nslabs;
    this.areas = ao === undefined ? new Int32Array(shared.areas) : new Int32Array(shared.areas, ao, areasBytes(desc.nareas) / 4);
    this.list = new Uint16Array(shared.slots, so + slotListOffset(n), n);
    this.padSlots = new Uint8Array(shared.slots, so + slotPadSlotsOffset(n), n);
    this.throttled = new Uint8Array(shared.slots, so + slotThrottledOffset(n), n);
    this.allocSize = new Uint32Array(shared.slots, so + slotAllocSizeOffset(n), n);
    this.origAddr = new Float64Array(shared.slots, so + slotOrigAddrOffset(n), n);
    this.data = dof === undefined ? new Uint8Array(shared.data) : new Uint8Array(shared.data, dof, dataBytes(n));
    this.dataRegion = new CopyRegion(this.data);
  }

  /** Allocate and initialise a pool (swiotlb_init_io_tlb_pool). */
  static create(desc: IoTlbPoolDesc): IoTlbPool {
    const shared: IoTlbPoolShared = {
      areas: new SharedArrayBuffer(areasBytes(desc.nareas)),
      slots: new SharedArrayBuffer(slotsBytes(desc.nslabs)),
      data: new SharedArrayBuffer(dataBytes(desc.nslabs)), // zero-filled once, never re-zeroed
    };
    return new IoTlbPool(desc, shared).init();
  }

  /**
   * swiotlb_init_io_tlb_pool over memory that may have been used before (a reused transient-pool
   * metadata block, atomic-pool memory): areas and slots reset. The bounce data is not touched: a
   * fresh SAB is zero, and atomic-pool memory comes zeroed (dma_alloc_from_pool's memset).
   */
  init(): this {
    this.areas.fill(0);
    this.padSlots.fill(0);
    this.throttled.fill(0);
    this.allocSize.fill(0);
    for (let i = 0; i < this.nslabs; i++) {
      this.list[i] = initialList(i, this.nslabs);
      this.origAddr[i] = INVALID_PHYS_ADDR;
    }
    Atomics.store(this.areas, AREA_POOL_READY, 1); // last: the metadata is whole (layout.ts)
    return this;
  }

  /** The metadata is whole (init has run to its end): what a thread checks when it takes in a published pool. */
  ready(): boolean {
    return Atomics.load(this.areas, AREA_POOL_READY) === 1;
  }

  /** Base index of area `a`'s record in `areas`. */
  areaBase(a: number): number {
    return a * AREA_INTS;
  }

  /**
   * Each area's area->used and its high-water mark, in area order, read from any thread (an atomic
   * load of each word; the two of one area may be a few slots apart when the pool is busy).
   */
  areaOccupancy(): { used: number[]; used_hiwater: number[] } {
    const used: number[] = [];
    const hiwater: number[] = [];
    for (let a = 0; a < this.nareas; a++) {
      const b = this.areaBase(a);
      used.push(Atomics.load(this.areas, b + AREA_USED));
      hiwater.push(Atomics.load(this.areas, b + AREA_USED_HIWATER));
    }
    return { used, used_hiwater: hiwater };
  }
}

/** A slot's list value in a fresh pool: free slots to the segment end, capped by the pool end. */
export function initialList(i: number, nslabs: number): number {
  return Math.min(IO_TLB_SEGSIZE - ioTlbOffset(i), nslabs - i);
}
