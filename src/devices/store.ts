// A storage device's backing store: capacity bytes of shared memory, zero until written, and which
// of its 4 KiB pages were ever written. A read of a page never written fills the destination with
// zeros instead of reading the store: the bytes are the same, but reading an untouched page maps
// the host's zero page, and the first write to it then takes a copy-on-write fault and a TLB flush
// on every CPU running the process (measured on a 2-core host, jobs/randrw-4k.fio: 7.7% of the
// run's CPU). A written page is committed once, by its first write, and read from the store after.
import { PAGE_SIZE } from '../swiotlb/constants.js';
import { fillBytes } from '../util/bytes.js';
import { CopyRegion, copyBytes } from '../memory/copy.js';

/** The page holding byte `off` (offsets reach 8 GiB: no 32-bit shifts). */
const pageOf = (off: number): number => Math.floor(off / PAGE_SIZE);

export class BackingStore {
  readonly bytes: Uint8Array;
  /** `bytes` as the bounce copy names them (memory/copy.ts). */
  readonly region: CopyRegion;
  /** 1 for a page (PAGE_SIZE) that a write touched; its bytes are in `bytes`, the others are zero. */
  private readonly written: Uint8Array;

  constructor(readonly capacity: number) {
    this.bytes = new Uint8Array(new SharedArrayBuffer(capacity));
    this.region = new CopyRegion(this.bytes);
    this.written = new Uint8Array(Math.ceil(capacity / PAGE_SIZE));
  }

  /** Whether [off, off + len) lies inside the store. */
  fits(off: number, len: number): boolean {
    return off >= 0 && len >= 0 && off + len <= this.capacity;
  }

  /** Store src[from, from + len) at `off` (the range fits). */
  write(src: CopyRegion, from: number, off: number, len: number): void {
    if (len === 0) return;
    copyBytes(this.region, off, src, from, len);
    const last = pageOf(off + len - 1);
    for (let p = pageOf(off); p <= last; p++) this.written[p] = 1;
  }

  /** Load [off, off + len) into dst at `to` (the range fits): stored bytes where written, zeros elsewhere. */
  read(dst: CopyRegion, to: number, off: number, len: number): void {
    const end = off + len;
    let at = off;
    while (at < end) {
      // The longest run of pages from `at` that are all written, or all not.
      const w = this.written[pageOf(at)]!;
      let runEnd = (pageOf(at) + 1) * PAGE_SIZE;
      while (runEnd < end && this.written[pageOf(runEnd)] === w) runEnd += PAGE_SIZE;
      runEnd = Math.min(runEnd, end);
      const d = to + (at - off);
      if (w !== 0) copyBytes(dst, d, this.region, at, runEnd - at);
      else fillBytes(dst.bytes, 0, d, d + (runEnd - at));
      at = runEnd;
    }
  }
}
