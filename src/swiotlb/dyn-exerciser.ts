// A checked map/unmap workload for one thread against a dynamic allocator while the growth worker
// adds pools and transient pools come and go (the dynamic-swiotlb threads test). Each mapping carries
// a per-thread canary: after map the bounce bytes (wherever the pool is: default, dynamic, transient)
// hold it; the "device" then writes an answer that the unmap must copy back. A pool seen
// half-initialised (list values, orig_addr) or a transient pool freed while mapped shows as a wrong
// byte, a failed assertion in the core, or a quiescence violation afterwards.
import { DmaDevice } from '../dma/device.js';
import { AtomicPool, type AtomicPoolShared } from '../memory/atomic-pool.js';
import { DecryptedArena, type DecryptedArenaShared } from '../memory/arena.js';
import { GuestMemory } from '../memory/guest.js';
import { GuestPhysMem, type GuestPhysShared } from '../memory/phys.js';
import { Rng } from '../util/rng.js';
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR } from './constants.js';
import { IoTlbMem, type IoTlbMemShared } from './mem.js';

export interface DynExerciserConfig {
  shared: IoTlbMemShared;
  phys: GuestPhysShared;
  arena: DecryptedArenaShared;
  atomicPool: AtomicPoolShared;
  guest: SharedArrayBuffer;
  guestBase: number;
  regionOffset: number;
  cpu: number;
  ops: number;
  seed: number;
  maxLive: number;
  maxSize: number;
}

export interface DynExerciserResult {
  maps: number;
  failures: number;
  /** Mappings that landed in a pool other than the default one (dynamic or transient). */
  outside: number;
  errors: string[];
}

export function runDynExerciser(c: DynExerciserConfig): DynExerciserResult {
  const phys = GuestPhysMem.attach(c.phys);
  const arena = DecryptedArena.attach(c.arena);
  const guest = new GuestMemory(c.guest, c.guestBase);
  const mem = IoTlbMem.attach(c.shared, { cpu: c.cpu, guest, memory: { arena, atomicPool: AtomicPool.attach(c.atomicPool, phys, arena) } });
  const dev = new DmaDevice('nvme0');
  const rng = new Rng(c.seed);
  const live: { a: number; off: number; len: number; tag: number }[] = [];
  const res: DynExerciserResult = { maps: 0, failures: 0, outside: 0, errors: [] };
  const fail = (m: string) => {
    if (res.errors.length < 10) res.errors.push(`cpu ${c.cpu}: ${m}`);
  };
  const slot = Math.ceil(c.maxSize / 4096) * 4096;
  for (let op = 0; op < c.ops && res.errors.length === 0; op++) {
    if (live.length < c.maxLive && (live.length === 0 || rng.float() < 0.5)) {
      const k = live.length === 0 ? 0 : findFree(live, c.maxLive, slot, c.regionOffset);
      const off = c.regionOffset + k * slot;
      const len = 1 + rng.below(c.maxSize);
      const tag = (op * 7 + c.cpu * 13) & 0xff;
      guest.bytes.fill(tag, off, off + len);
      const a = mem.tblMapSingle(dev, guest.addrOf(off), len, 0, DMA_FROM_DEVICE, 0);
      res.maps++;
      if (a === DMA_MAPPING_ERROR) {
        res.failures++;
        continue;
      }
      const pool = mem.findPool(dev, a);
      if (pool === null) {
        fail(`0x${a.toString(16)} is in no pool right after its map`);
        break;
      }
      if (pool !== mem.defpool) res.outside++;
      const b = a - pool.start;
      if (b + len > pool.data.length) fail(`mapping 0x${a.toString(16)}+${len} runs past its pool`);
      else if (pool.data[b] !== tag || pool.data[b + len - 1] !== tag) fail(`bounce bytes of 0x${a.toString(16)} do not hold the map-time copy`);
      else pool.data.fill(tag ^ 0xff, b, b + len); // the device's answer
      live.push({ a, off, len, tag });
    } else if (live.length > 0) {
      const i = rng.below(live.length);
      const m = live[i]!;
      live.splice(i, 1);
      mem.tblUnmapSingle(dev, m.a, m.len, DMA_FROM_DEVICE, 0);
      if (guest.bytes[m.off] !== (m.tag ^ 0xff) || guest.bytes[m.off + m.len - 1] !== (m.tag ^ 0xff)) fail(`unmap of 0x${m.a.toString(16)} did not copy the device's answer back`);
    }
  }
  for (const m of live) mem.tblUnmapSingle(dev, m.a, m.len, DMA_FROM_DEVICE, 0);
  return res;
}

function findFree(live: { off: number }[], max: number, slot: number, base: number): number {
  const used = new Set(live.map((l) => (l.off - base) / slot));
  for (let k = 0; k < max; k++) if (!used.has(k)) return k;
  return 0;
}
