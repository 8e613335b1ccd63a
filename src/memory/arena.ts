// Bytes for guest memory that becomes shared with the host (decrypted) after boot: dynamic swiotlb
// pools and the atomic DMA pool's chunks. Their *addresses* come from the page allocator (phys.ts);
// their *bytes* must be memory every thread (vCPUs, devices) already holds, and a running thread
// cannot be handed a new SharedArrayBuffer without a message. So one SharedArrayBuffer is made at
// boot, with a capacity fixed from the configuration and reported, and carved by an atomic bump
// pointer: neither a dynamic pool nor an atomic-pool chunk is ever freed in the kernel, so carving
// never needs to give space back (a transient pool's memory goes back to the atomic pool, not here).
//
// The capacity costs nothing until used: the operating system commits a SharedArrayBuffer's pages
// when they are first touched. Its default (the VM's) is the guest's RAM, at most MAX_ARENA_BYTES, so
// the arena does not run out before the guest's memory does; a smaller COCO_DECRYPTED_ARENA makes
// carve() fail first, which the owner counts (ARENA_FAILS) and reports apart from a failed page
// allocation.
//
// Invariant: ARENA_USED_PAGES only grows and never exceeds ARENA_CAPACITY_PAGES (compare-and-exchange),
// so two carves never overlap.
import { InputError, assert } from '../errors.js';
import { PAGE_SIZE } from './phys.js';

/** The largest arena: 4 GiB, the most one Uint8Array spans in Node 20. Dynamic pools lie below 4 GiB
 *  (x86 CoCo: no SWIOTLB_ANY); the atomic pools' chunks come from the whole guest. */
export const MAX_ARENA_BYTES = 4 * 1024 ** 3;

// ---- layout of the arena's header (Int32 words) ----
export const ARENA_MAGIC = 0;
export const ARENA_CAPACITY_PAGES = 1;
export const ARENA_USED_PAGES = 2; // the bump pointer
export const ARENA_CARVES = 3; // successful carves
export const ARENA_FAILS = 4; // carves refused for want of capacity
export const ARENA_HEADER_INTS = 8;
export const ARENA_MAGIC_VALUE = 0x44435259; // "DCRY"

export interface DecryptedArenaShared {
  header: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export class DecryptedArena {
  readonly shared: DecryptedArenaShared;
  readonly header: Int32Array;
  /** The whole arena. */
  readonly data: Uint8Array;
  readonly capacityBytes: number;

  private constructor(shared: DecryptedArenaShared) {
    this.shared = shared;
    this.header = new Int32Array(shared.header);
    assert(this.header[ARENA_MAGIC] === ARENA_MAGIC_VALUE, 'decrypted arena: bad magic');
    this.data = new Uint8Array(shared.data);
    this.capacityBytes = this.header[ARENA_CAPACITY_PAGES]! * PAGE_SIZE;
  }

  /** `what` names the setting in the error a bad capacity gets. */
  static create(capacityBytes: number, what = 'decrypted arena'): DecryptedArena {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < PAGE_SIZE || capacityBytes > MAX_ARENA_BYTES || capacityBytes % PAGE_SIZE !== 0) {
      throw new InputError('EBADSIZE', `${what}: ${capacityBytes} bytes is not valid; expected a whole number of 4 KiB pages from 4K to ${MAX_ARENA_BYTES / 1024 ** 2}M`);
    }
    const header = new SharedArrayBuffer(ARENA_HEADER_INTS * 4);
    const h = new Int32Array(header);
    h[ARENA_MAGIC] = ARENA_MAGIC_VALUE;
    h[ARENA_CAPACITY_PAGES] = capacityBytes / PAGE_SIZE;
    return new DecryptedArena({ header, data: new SharedArrayBuffer(capacityBytes) });
  }

  static attach(shared: DecryptedArenaShared): DecryptedArena {
    return new DecryptedArena(shared);
  }

  /** Byte offset of a new, page-aligned range of `bytes` (rounded up to pages), or -1 if the arena is full. */
  carve(bytes: number): number {
    assert(Number.isSafeInteger(bytes) && bytes > 0, `decrypted arena: carve of ${bytes} bytes`);
    const pages = Math.ceil(bytes / PAGE_SIZE);
    const cap = this.header[ARENA_CAPACITY_PAGES]!;
    for (;;) {
      const used = Atomics.load(this.header, ARENA_USED_PAGES);
      if (used + pages > cap) {
        Atomics.add(this.header, ARENA_FAILS, 1);
        return -1;
      }
      if (Atomics.compareExchange(this.header, ARENA_USED_PAGES, used, used + pages) === used) {
        Atomics.add(this.header, ARENA_CARVES, 1);
        return used * PAGE_SIZE;
      }
    }
  }

  stats(): { capacity_bytes: number; used_bytes: number; carves: number; failures: number } {
    return {
      capacity_bytes: this.capacityBytes,
      used_bytes: Atomics.load(this.header, ARENA_USED_PAGES) * PAGE_SIZE,
      carves: Atomics.load(this.header, ARENA_CARVES),
      failures: Atomics.load(this.header, ARENA_FAILS),
    };
  }
}

/**
 * The default set_memory_decrypted() latency: 0 ns per MiB. No measured figure for the conversion
 * (TDX MapGPA / SEV-SNP page-state change hypercalls plus the host's page work) was found to cite;
 * the kernel's developers call it "expensive" without a number (the swiotlb throttling thread, 2024).
 * Give a measured value for your platform with --decrypt-latency.
 */
export const DECRYPT_LATENCY_NS_PER_MIB_DEFAULT = 0;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * set_memory_decrypted(addr, numpages): make guest pages shared with the host. Its cost is the
 * hypercall, modelled as `latencyNsPerMiB` for each MiB, spent blocked (the vCPU is out in the host
 * meanwhile). Returns the nanoseconds it took, as modelled.
 */
export function setMemoryDecrypted(addr: number, bytes: number, latencyNsPerMiB: number): number {
  assert(addr % PAGE_SIZE === 0 && bytes > 0 && bytes % PAGE_SIZE === 0, `set_memory_decrypted: 0x${addr.toString(16)}+${bytes} is not whole pages`);
  const ns = (bytes / (1024 * 1024)) * latencyNsPerMiB;
  if (ns > 0) Atomics.wait(sleeper, 0, 0, ns / 1e6);
  return ns;
}
