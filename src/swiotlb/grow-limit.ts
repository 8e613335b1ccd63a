// [proposal] A limit on how much memory dynamic swiotlb may allocate (--grow-limit). Michael Kelley, in
// the throttling RFC's review thread (Aug 2024, seed thread 000): "SWIOTLB_DYNAMIC currently doesn't
// have a limit to how much it will allocate, and it probably should." No kernel has one; this is the
// emulator's reading of it, for the dynamic and hybrid policies.
//
// What counts: the default pool and every dynamic pool, i.e. io_tlb_nslabs (mem->nslabs, what debugfs
// shows and what is never given back: dynamic pools are never freed). Transient pools do not count:
// each holds one mapping and is freed at its unmap, they come from the atomic DMA pool, which has its
// own bound (coherent_pool=, and the pool's own expansion), and they are the fallback that keeps a map
// alive while growth is refused; counting them would fail maps at the limit that a freed transient
// pool would serve a moment later. The report's peak memory still includes them.
//
// How: swiotlb_alloc_pool's halving loop (dynamic.ts addPool) reserves the size it is about to
// allocate against the limit (a compare-exchange on DYN_GROW_COMMITTED_SLABS, which starts at the
// default pool's slots), so several threads growing at once (the worker, hybrid's vCPUs) never pass
// it together; a size that does not fit is halved like one the buddy allocator cannot serve, and below
// IO_TLB_MIN_SLABS the growth fails, counted in DYN_GROW_LIMIT_REFUSED and reported with the limit, not
// as the kernel's "Failed to allocate new pool". A reservation whose allocation fails is given back.
import { DYN_GROW_COMMITTED_SLABS, DYN_GROW_LIMIT_REFUSED, DYN_GROW_LIMIT_SLABS } from './layout.js';

/** The limit in slots, 0 when there is none. */
export function growLimitSlabs(r: Int32Array): number {
  return r[DYN_GROW_LIMIT_SLABS]!;
}

/** Reserve `nslabs` slots under the limit; false when they would pass it (nothing reserved). Always true without a limit. */
export function reserveGrowth(r: Int32Array, nslabs: number): boolean {
  const limit = r[DYN_GROW_LIMIT_SLABS]!;
  for (;;) {
    const c = Atomics.load(r, DYN_GROW_COMMITTED_SLABS);
    if (limit > 0 && c + nslabs > limit) return false;
    if (Atomics.compareExchange(r, DYN_GROW_COMMITTED_SLABS, c, c + nslabs) === c) return true;
  }
}

/** Give back a reservation whose pool was not made. */
export function releaseGrowth(r: Int32Array, nslabs: number): void {
  Atomics.sub(r, DYN_GROW_COMMITTED_SLABS, nslabs);
}

/** A growth the limit refused: counted; the caller reports it. */
export function growthRefused(r: Int32Array): void {
  Atomics.add(r, DYN_GROW_LIMIT_REFUSED, 1);
}

export interface GrowLimitStats {
  /** The limit in bytes, or null without one. */
  limit_bytes: number | null;
  /** Default and dynamic pools' bytes reserved (the pools made, plus any growth in progress). */
  committed_bytes: number;
  /** Growths refused by the limit. */
  refused: number;
}

export function growLimitStats(r: Int32Array, slotBytes: number): GrowLimitStats {
  const limit = r[DYN_GROW_LIMIT_SLABS]!;
  return {
    limit_bytes: limit === 0 ? null : limit * slotBytes, committed_bytes: Atomics.load(r, DYN_GROW_COMMITTED_SLABS) * slotBytes,
    refused: Atomics.load(r, DYN_GROW_LIMIT_REFUSED),
  };
}
