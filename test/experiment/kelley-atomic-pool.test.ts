// Experiment 7: the rule on made-up counts (a burst refused at every guest, some, none), the counted
// burst itself (exact: one thread, no kworker, the same on any host), then the quick form. The atomic
// pool sizes follow from dma_atomic_pool_init: 128 KiB per GiB of RAM (totalram_pages, less what the
// boot reservations take), at least 128 KiB, one pool per zone the guest has (a 1 GiB guest has no
// ZONE_NORMAL, so no kernel pool); each pool's chunk is one buddy block, rounded up to a power of two.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type AtomicPoolFigures, type BurstCount, countBurst, kelleyAtomicPool } from '../../src/experiment/kelley-atomic-pool.js';
import { shippedJob } from '../../src/experiment/measure.js';
import { overrideJob } from '../../src/sweep/size.js';
import { quickForm } from '../helpers/experiment.js';

function figures(refused: number[]): AtomicPoolFigures {
  const count = (r: number, i: number): BurstCount => ({
    mem: `${i}G`, atomic_pool_size: 131072, atomic_boot_bytes: 262144, maps: 512, map_bytes: 65536, from_swiotlb: 16,
    transient_held: 496 - r, refused: r, refill_queued_at: 1, refills_needed: 3, refused_with_refills: 0,
  });
  return { vcpus: 2, counts: refused.map(count), runtime: '1s', cells: [] };
}

describe('kelley-atomic-pool: the rule', () => {
  it('a guest runs out when the counted burst refuses a map; every guest, some, none', () => {
    expect(kelleyAtomicPool.judge(figures([492, 1])).verdict).toBe('reproduced');
    expect(kelleyAtomicPool.judge(figures([492, 0])).verdict).toBe('partly');
    expect(kelleyAtomicPool.judge(figures([0, 0])).verdict).toBe('refuted');
  });
});

describe('kelley-atomic-pool: the counted burst', () => {
  const job = overrideJob(readFileSync(shippedJob('nic-burst.fio'), 'utf8'), { iodepth: 64 });
  it('a 1 GiB guest: two 128 KiB pools hold four 64 KiB transient pools; the rest of the burst is refused unless the kworker refills', () => {
    const c = countBurst('1G', 2, job);
    expect(c).toMatchObject({ atomic_pool_size: 128 * 1024, atomic_boot_bytes: 256 * 1024, maps: 512, map_bytes: 65536, from_swiotlb: 16, transient_held: 4, refused: 492, refill_queued_at: 1 });
    // With a refill between every two maps nothing is refused: the exhaustion is the race, not the memory.
    expect(c.refused_with_refills).toBe(0);
    expect(c.refills_needed).toBeGreaterThan(1);
    // Every map of the burst is accounted for, and the count is the same on a second run (no thread but this one).
    expect(c.from_swiotlb + c.transient_held + c.refused).toBe(c.maps);
    expect(countBurst('1G', 2, job)).toEqual(c);
  });
  it('a 16 GiB guest: three pools of 2 MiB chunks hold 96', () => {
    expect(countBurst('16G', 2, job)).toMatchObject({ atomic_boot_bytes: 6 * 1024 * 1024, transient_held: 96, refused: 400 });
  });
});

describe('kelley-atomic-pool: the quick form', () => {
  it('counts the bursts on three guest sizes, runs the 1 GiB guest in the VM, and reaches the recorded verdict', async () => {
    const r = await quickForm(kelleyAtomicPool);
    const f = r.figures as AtomicPoolFigures;
    expect(f.counts.map((c) => c.mem)).toEqual(['1G', '4G', '16G']);
    expect(f.counts[2]!.atomic_boot_bytes).toBeGreaterThan(f.counts[1]!.atomic_boot_bytes);
    expect(f.cells.map((c) => c.atomic)).toEqual(['1G guest']);
    // The pool was full: the VM run made transient pools.
    expect(f.cells[0]!.transient_created!.median).toBeGreaterThan(0);
  }, 180_000);
});
