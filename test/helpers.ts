// Shared test fixtures: a small CoCo-style allocator with private memory on one thread.
import { DmaDevice, type DmaDeviceOptions } from '../src/dma/device.js';
import { IoTlbMem, type SwiotlbEvent } from '../src/swiotlb/mem.js';

import { POOL_START } from '../src/swiotlb/constants.js';
import { GUEST_BASE, GuestMemory } from '../src/memory/guest.js';

export { GUEST_BASE, POOL_START };

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
