// Long random single-threaded map/unmap sequences checked, after every step, against a small and
// obviously correct model written from the reference (§5.3, §5.4, §6, §18): which slot is chosen, the
// list value of every slot (recomputed from scratch as the free run to the segment end) and the
// per-area cursor.
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL } from '../../src/swiotlb/constants.js';
import { Rng } from '../../src/util/rng.js';
import { AREA_INDEX, AREA_USED } from '../../src/swiotlb/layout.js';
import { fixture } from '../helpers.js';

class Model {
  used: boolean[];
  cursor: number[];
  areaUsed: number[];
  readonly areaN: number;
  constructor(readonly nslabs: number, readonly nareas: number, readonly start: number) {
    this.used = new Array(nslabs).fill(false);
    this.cursor = new Array(nareas).fill(0);
    this.areaUsed = new Array(nareas).fill(0);
    this.areaN = nslabs / nareas;
  }
  /** Free slots from s to the end of its segment. */
  freeRun(s: number): number {
    let n = 0;
    for (let i = s; i < Math.floor(s / 128) * 128 + 128 && !this.used[i]; i++) n++;
    return n;
  }
  list(i: number): number {
    return this.used[i] ? 0 : this.freeRun(i);
  }
  map(cpu: number, orig: number, mappingSize: number, minAlign: number): number {
    const offset = orig & minAlign & 2047;
    const size = mappingSize + offset;
    const nslots = Math.ceil(size / 2048);
    if (size > 128 * 2048) return -1;
    const pageAlign = minAlign === 0 && size >= 4096;
    const allocMask = pageAlign ? 4095 : 2047;
    const iotlb = minAlign & ~allocMask;
    const stride = Math.floor(Math.max(allocMask, iotlb) / 2048) + 1;
    for (let k = 0; k < this.nareas; k++) {
      const a = (cpu + k) % this.nareas;
      if (nslots > this.areaN - this.areaUsed[a]!) continue;
      let i = this.cursor[a]!;
      for (let checked = 0; checked < this.areaN;) {
        const s = a * this.areaN + i;
        const addr = this.start + s * 2048;
        const aligned = addr % (allocMask + 1) === 0 && (orig === 0 || (addr & iotlb) === (orig & iotlb));
        if (!aligned) {
          i = i + 1 >= this.areaN ? 0 : i + 1;
          checked += 1;
          continue;
        }
        if (this.freeRun(s) >= nslots) {
          for (let j = s; j < s + nslots; j++) this.used[j] = true;
          this.cursor[a] = i + nslots >= this.areaN ? 0 : i + nslots;
          this.areaUsed[a]! += nslots;
          return s;
        }
        i = i + stride >= this.areaN ? 0 : i + stride;
        checked += stride;
      }
    }
    return -1;
  }
  unmap(first: number, nslots: number): void {
    for (let j = first; j < first + nslots; j++) this.used[j] = false;
    this.areaUsed[Math.floor(first / this.areaN)]! -= nslots;
  }
}

function runSequence(seed: number, nslabs: number, nareas: number, steps: number) {
  const { mem, guest } = fixture(nslabs, nareas, 8 * 1024 * 1024);
  const pool = mem.defpool;
  const model = new Model(nslabs, nareas, pool.start);
  const rng = new Rng(seed);
  const devs = [new DmaDevice('plain'), new DmaDevice('nvme', { minAlignMask: 0xfff })];
  const live: { tlb: number; size: number; dev: DmaDevice; first: number; nslots: number; dir: 0 | 1 | 2 }[] = [];
  let maps = 0;
  let fails = 0;
  for (let step = 0; step < steps; step++) {
    if (live.length === 0 || rng.below(100) < 55) {
      const dev = devs[rng.below(2)]!;
      mem.cpu = rng.below(8);
      const size = rng.below(4) === 0 ? 1 + rng.below(260_000) : 1 + rng.below(9000);
      const orig = guest.base + rng.below(guest.size - 270_000);
      const dir = ([DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL] as const)[rng.below(3)]!;
      const expected = model.map(mem.cpu, orig, size, dev.minAlignMask);
      const tlb = mem.tblMapSingle(dev, orig, size, 0, dir, 0);
      if (expected < 0) {
        expect(tlb, `step ${step}: the model found no slots`).toBe(DMA_MAPPING_ERROR);
        fails++;
      } else {
        const sub = orig & dev.minAlignMask & 2047;
        expect((tlb - sub - pool.start) / 2048, `step ${step}: chosen slot`).toBe(expected);
        live.push({ tlb, size, dev, first: expected, nslots: Math.ceil((size + sub) / 2048), dir });
        maps++;
      }
    } else {
      const m = live.splice(rng.below(live.length), 1)[0]!;
      mem.tblUnmapSingle(m.dev, m.tlb, m.size, m.dir, 0);
      model.unmap(m.first, m.nslots);
    }
    for (let i = 0; i < nslabs; i++) {
      if (pool.list[i] !== model.list(i)) throw new Error(`seed ${seed} step ${step}: list[${i}] = ${pool.list[i]}, model ${model.list(i)}`);
    }
    for (let a = 0; a < nareas; a++) {
      expect(pool.areas[pool.areaBase(a) + AREA_INDEX]).toBe(model.cursor[a]);
      expect(pool.areas[pool.areaBase(a) + AREA_USED]).toBe(model.areaUsed[a]);
    }
  }
  for (const m of live) mem.tblUnmapSingle(m.dev, m.tlb, m.size, m.dir, 0);
  for (let i = 0; i < nslabs; i++) expect(pool.list[i]).toBe(Math.min(128 - (i % 128), nslabs - i));
  expect(mem.memUsed()).toBe(0);
  return { maps, fails };
}

describe('random sequences against the reference model', () => {
  it.each([1, 2, 3, 4, 5, 6])('seed %i: 4 areas, 1024 slots, 3000 steps', (seed) => {
    const { maps, fails } = runSequence(seed, 1024, 4, 3000);
    expect(maps).toBeGreaterThan(500);
    expect(fails).toBeGreaterThan(0); // the pool fills up, so the failure path is exercised too
  });
  it('one area, 256 slots, 5000 steps', () => {
    runSequence(99, 256, 1, 5000);
  });
});
