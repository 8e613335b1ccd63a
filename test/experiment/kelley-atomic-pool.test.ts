// Experiment 7: the rule on made-up cells (a majority of runs, every guest, some, none), then the quick
// form, whose atomic pool sizes follow from dma_atomic_pool_init: 128 KiB per GiB of RAM, at least
// 128 KiB: 128 KiB at 1 GiB, 512 KiB at 4 GiB less what the low 1 MiB reservation takes off the page
// count (the kernel counts totalram_pages, not the guest's nominal size), 2 MiB at 16 GiB.
import { describe, expect, it } from 'vitest';
import { type AtomicPoolFigures, kelleyAtomicPool } from '../../src/experiment/kelley-atomic-pool.js';
import { quickForm } from '../helpers/experiment.js';

function figures(exhausted: Array<[number, number]>): AtomicPoolFigures {
  return {
    vcpus: 2, runtime: '1s',
    cells: exhausted.map(([out, runs], i) => ({
      atomic: `g${i}`, atomic_pool_size: 131072, runs, not_ok: 0, runs_exhausted: out, transient_created: null, transient_failed_atomic: null,
      exhaustions: null, expansions: null, atomic_size_end: null, dynamic_pools: null, drops: null, first_failure_s: null,
    })),
  };
}

describe('kelley-atomic-pool: the rule', () => {
  it('a guest runs out when more than half its runs refuse a transient pool', () => {
    expect(kelleyAtomicPool.judge(figures([[2, 3], [3, 3]])).verdict).toBe('reproduced');
    expect(kelleyAtomicPool.judge(figures([[2, 3], [1, 2]])).verdict).toBe('partly'); // 1 of 2 is not more than half
    expect(kelleyAtomicPool.judge(figures([[1, 3], [0, 3]])).verdict).toBe('refuted');
  });
});

describe('kelley-atomic-pool: the quick form', () => {
  it('bursts NIC maps on three guest sizes and reaches the recorded verdict', async () => {
    const r = await quickForm(kelleyAtomicPool);
    const f = r.figures as AtomicPoolFigures;
    expect(f.cells.map((c) => c.atomic)).toEqual(['1G guest', '4G guest', '16G guest']);
    expect(f.cells[0]!.atomic_pool_size).toBe(128 * 1024);
    expect(f.cells[2]!.atomic_pool_size).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(f.cells[2]!.atomic_pool_size).toBeGreaterThan(f.cells[1]!.atomic_pool_size!);
    // The pool was full: every cell made transient pools.
    for (const c of f.cells) expect(c.transient_created!.median).toBeGreaterThan(0);
  }, 180_000);
});
