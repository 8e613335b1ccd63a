// A checked map/unmap workload for one thread against a shared allocator. Used by the multi-thread
// tests and the stress harness. It plays both the driver (private memory) and the device (the bounce
// buffer), and checks, as it goes:
//   - no slot belongs to two live mappings: an ownership shadow (one Int32 per slot, shared by all
//     threads) is claimed with compare-exchange at map and released before unmap;
//   - data written by the CPU arrives in the bounce buffer, data written by the "device" arrives back
//     in private memory for FROM_DEVICE/BIDIRECTIONAL, and bytes just outside a mapping are untouched;
//   - every io_tlb_used value it reads is later covered by used_hiwater (checked by the caller).
import { DmaDevice } from '../dma/device.js';
import { dmaMapSingle, dmaUnmapSingle } from '../dma/direct.js';
import { GuestMemory } from '../memory/guest.js';
import {
  DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE, type DmaDirection, nrSlots,
} from './constants.js';
import { IoTlbMem, type IoTlbMemShared } from './mem.js';
import { Rng } from '../util/rng.js';

export interface ExerciserConfig {
  shared: IoTlbMemShared;
  /** Ownership shadow: Int32 per slot of the default pool, 0 = free. */
  owners: SharedArrayBuffer;
  /** Private memory shared by the exercisers; this thread uses [regionOffset, regionOffset + regionBytes). */
  guest: SharedArrayBuffer;
  guestBase: number;
  regionOffset: number;
  regionBytes: number;
  cpu: number;
  ops: number;
  seed: number;
  /** Live mappings kept at most. */
  maxLive: number;
  /** Largest mapping in bytes. */
  maxSize: number;
  minAlignMask: number;
}

export interface ExerciserResult {
  maps: number;
  mapFailures: number;
  unmaps: number;
  violations: string[];
  maxUsedSeen: number;
  bytesChecked: number;
}

const GUARD = 16; // untouched bytes on each side of a mapping's private buffer
const MAX_VIOLATIONS = 20;

interface Live {
  tlb: number;
  off: number;
  size: number;
  dir: DmaDirection;
  tag: number;
  first: number;
  nslots: number;
}

export function runExerciser(cfg: ExerciserConfig): ExerciserResult {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const mem = IoTlbMem.attach(cfg.shared, { cpu: cfg.cpu, guest });
  const dev = new DmaDevice(`exerciser${cfg.cpu}`, { minAlignMask: cfg.minAlignMask });
  const pool = mem.defpool;
  const owners = new Int32Array(cfg.owners);
  const rng = new Rng(cfg.seed);
  const id = cfg.cpu + 1;
  const slotBytes = cfg.maxSize + 2 * GUARD + 4096;
  const nbuf = Math.floor(cfg.regionBytes / slotBytes);
  const live: (Live | null)[] = new Array(Math.min(cfg.maxLive, nbuf)).fill(null);
  const res: ExerciserResult = { maps: 0, mapFailures: 0, unmaps: 0, violations: [], maxUsedSeen: 0, bytesChecked: 0 };
  const bytes = guest.bytes;
  const data = pool.data;
  const fail = (m: string) => {
    if (res.violations.length < MAX_VIOLATIONS) res.violations.push(`cpu ${cfg.cpu}: ${m}`);
  };
  const sample = (size: number, k: number) => (k === 0 ? 0 : k === 1 ? size - 1 : rngPos(rng, size));

  for (let op = 0; op < cfg.ops; op++) {
    const b = rng.below(live.length);
    const cur = live[b];
    if (cur === null || cur === undefined) {
      // Map: a fresh buffer in slot b of this thread's region, at a random sub-page offset.
      const size = rng.logUniform(cfg.maxSize);
      const off = cfg.regionOffset + b * slotBytes + GUARD + rng.below(4096);
      const dir = (rng.below(3) === 0 ? DMA_BIDIRECTIONAL : rng.below(2) === 0 ? DMA_TO_DEVICE : DMA_FROM_DEVICE) as DmaDirection;
      const tag = 1 + rng.below(254);
      bytes.fill(0, off - GUARD, off + size + GUARD);
      bytes.fill(tag, off, off + size);
      const tlb = dmaMapSingle(mem, dev, guest.addrOf(off), size, dir);
      const used = mem.memUsed();
      if (used > res.maxUsedSeen) res.maxUsedSeen = used;
      if (tlb === DMA_MAPPING_ERROR) {
        res.mapFailures++;
        continue;
      }
      res.maps++;
      const sub = tlb & cfg.minAlignMask & (IO_TLB_SIZE - 1);
      const first = Math.floor((tlb - sub - pool.start) / IO_TLB_SIZE);
      const nslots = nrSlots(size + sub);
      for (let s = first; s < first + nslots; s++) {
        const prev = Atomics.compareExchange(owners, s, 0, id);
        if (prev !== 0) fail(`slot ${s} mapped by cpu ${cfg.cpu} is still owned by cpu ${prev - 1}`);
      }
      // The device side sees the CPU's data.
      const t = tlb - pool.start;
      for (let k = 0; k < 4; k++) {
        const p = sample(size, k);
        if (data[t + p] !== tag) fail(`bounce byte ${p} of a ${size}-byte mapping is ${data[t + p]}, expected ${tag}`);
      }
      res.bytesChecked += 4;
      // The device writes its answer (one's complement of the tag) into FROM_DEVICE buffers.
      if (dir !== DMA_TO_DEVICE) data.fill(tag ^ 0xff, t, t + size);
      live[b] = { tlb, off, size, dir, tag, first, nslots };
    } else {
      for (let s = cur.first; s < cur.first + cur.nslots; s++) {
        const prev = Atomics.compareExchange(owners, s, id, 0);
        if (prev !== id) fail(`slot ${s} of a live mapping of cpu ${cfg.cpu} was owned by ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`}`);
      }
      dmaUnmapSingle(mem, dev, cur.tlb, cur.size, cur.dir);
      res.unmaps++;
      const expect = cur.dir === DMA_TO_DEVICE ? cur.tag : cur.tag ^ 0xff;
      for (let k = 0; k < 4; k++) {
        const p = sample(cur.size, k);
        if (bytes[cur.off + p] !== expect) fail(`private byte ${p} of a ${cur.size}-byte ${cur.dir} mapping is ${bytes[cur.off + p]}, expected ${expect}`);
      }
      if (bytes[cur.off - 1] !== 0 || bytes[cur.off + cur.size] !== 0) fail(`bytes outside a ${cur.size}-byte mapping were written`);
      res.bytesChecked += 6;
      live[b] = null;
    }
  }
  for (const cur of live) {
    if (cur === null || cur === undefined) continue;
    for (let s = cur.first; s < cur.first + cur.nslots; s++) Atomics.compareExchange(owners, s, id, 0);
    dmaUnmapSingle(mem, dev, cur.tlb, cur.size, cur.dir);
    res.unmaps++;
  }
  return res;
}

function rngPos(rng: Rng, size: number): number {
  return rng.below(size);
}
