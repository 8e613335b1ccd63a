// Private (encrypted) guest memory: the vCPUs' own buffers. It lives in its own SharedArrayBuffer so
// that vCPU threads can share it, and it is never handed to a device thread: in a CoCo VM the host
// cannot read private pages, which is the whole reason bounce buffers exist.
import { InputError, InvariantError, assert } from '../errors.js';
import { CopyRegion } from './copy.js';

/** Guest-physical address of private memory: above 4 GiB, clear of the pool below the PCI hole. */
export const GUEST_BASE = 0x1_0000_0000;

export class GuestMemory {
  readonly bytes: Uint8Array;
  /** `bytes` as the bounce copy names them (copy.ts). */
  readonly region: CopyRegion;
  readonly size: number;

  /** `base` is the guest-physical address of the first byte. */
  constructor(readonly sab: SharedArrayBuffer, readonly base: number) {
    assert(Number.isSafeInteger(base) && base > 0, 'private memory starts above physical address 0');
    this.bytes = new Uint8Array(sab);
    this.region = new CopyRegion(this.bytes);
    this.size = sab.byteLength;
  }

  static create(base: number, size: number): GuestMemory {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new InputError('EBADSIZE', `private guest memory: ${size} bytes is not a positive size`);
    }
    return new GuestMemory(new SharedArrayBuffer(size), base);
  }

  /** Byte offset of guest-physical `addr` in `bytes`; the range must lie inside this memory. */
  offsetOf(addr: number, size: number): number {
    const off = addr - this.base;
    // Not assert(): the message would be built on every call of the hot path.
    if (off < 0 || off + size > this.size) {
      throw new InvariantError(`guest address 0x${addr.toString(16)}+${size} is outside private memory`);
    }
    return off;
  }

  /** Guest-physical address of byte offset `off`. */
  addrOf(off: number): number {
    return this.base + off;
  }
}
