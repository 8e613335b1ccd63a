// Shared test fixtures: a small CoCo-style allocator with private memory on one thread.
import { DmaDevice, type DmaDeviceOptions } from '../src/dma/device.js';
import { GuestMemory } from '../src/memory/guest.js';
import { IoTlbMem, type SwiotlbEvent } from '../src/swiotlb/mem.js';

export const POOL_START = 0x8000_0000; // 2 GiB, page-aligned, below 4 GiB like the CoCo pool
export const GUEST_BASE = 0x1_0000_0000; // private memory above 4 GiB

export interface Fixture {
  mem: IoTlbMem;
  guest: GuestMemory;
  events: SwiotlbEvent[];
  dev: (opts?: DmaDeviceOptions) => DmaDevice;
}

export function fixture(nslabs: number, nareas = 1, guestBytes = 4 * 1024 * 1024, start = POOL_START): Fixture {
  const guest = GuestMemory.create(GUEST_BASE, guestBytes);
  const events: SwiotlbEvent[] = [];
  const mem = IoTlbMem.create({ nslabs, nareas, start, forceBounce: true }, { cpu: 0, guest, events: (e) => events.push(e) });
  return { mem, guest, events, dev: (opts = {}) => new DmaDevice('test-dev', opts) };
}
