// Experiment 7, kelley-atomic-pool: Michael Kelley (seed 000 thread) on dynamic swiotlb for maps that
// cannot block: their transient pools come from the atomic DMA pool, "which typically isn't that large
// and could itself become exhausted". A burst of non-blocking NIC maps against a full 1 MiB pool with
// dynamic swiotlb on, with the kernel's default atomic pool and with a small one.
import type { Spread } from '../sweep/figures.js';
import type { RunRecord } from '../sweep/run.js';
import { formatBytes } from '../util/units.js';
import { cell, config, notOk, repeated, reports, shippedJob, spreadBy, spreadFig } from './measure.js';
import { readFileSync } from 'node:fs';
import { overrideJob } from '../sweep/size.js';
import type { Experiment } from './types.js';

interface Cell {
  atomic: string;
  /** atomic_pool_size as booted (bytes): each pool's boot size and its expansion threshold. */
  atomic_pool_size: number | null;
  runs: number;
  not_ok: number;
  /** Ok runs with at least one transient pool refused because no atomic pool could serve it. */
  runs_exhausted: number;
  transient_created: Spread | null;
  transient_failed_atomic: Spread | null;
  exhaustions: Spread | null;
  expansions: Spread | null;
  atomic_size_end: Spread | null;
  dynamic_pools: Spread | null;
  drops: Spread | null;
  /** Seconds from the run's start to its first map failure (with dynamic on, a transient pool the atomic pool could not give), median over the runs that had one. */
  first_failure_s: number | null;
}

/** Guest sizes: the kernel's default atomic pool is 128 KiB per GiB of RAM, at least 128 KiB, at most 4 MiB. */
export const GUESTS = ['1G', '4G', '16G'] as const;

export interface AtomicPoolFigures {
  vcpus: number;
  runtime: string;
  cells: Cell[];
}

function med(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function cellOf(atomic: string, recs: RunRecord[]): Cell {
  const reps = reports(recs);
  const failedAtomic = (r: (typeof reps)[number]) => r.dynamic.transient?.failed_by_cause.atomic_pool ?? 0;
  const okRecs = recs.filter((r) => r.status === 'ok');
  return {
    atomic, atomic_pool_size: reps[0]?.guest_memory.atomic_pool.atomic_pool_size ?? null, runs: recs.length, not_ok: notOk(recs).length,
    runs_exhausted: reps.filter((r) => failedAtomic(r) > 0).length,
    transient_created: spreadBy(recs, (r) => r.dynamic.transient?.created ?? null), transient_failed_atomic: spreadBy(recs, failedAtomic),
    exhaustions: spreadBy(recs, (r) => r.guest_memory.atomic_pool.exhaustions), expansions: spreadBy(recs, (r) => r.guest_memory.atomic_pool.expansions),
    atomic_size_end: spreadBy(recs, (r) => r.guest_memory.atomic_pool.size), dynamic_pools: spreadBy(recs, (r) => r.dynamic.pools?.dynamic.count ?? null),
    drops: spreadFig(recs, 'packets_dropped'),
    first_failure_s: med(okRecs.flatMap((r) => (r.first_event_s?.map_failure !== undefined ? [r.first_event_s.map_failure] : []))),
  };
}

const majority = (c: Cell): boolean => c.runs - c.not_ok > 0 && c.runs_exhausted * 2 > c.runs - c.not_ok;

export const kelleyAtomicPool: Experiment<AtomicPoolFigures> = {
  name: 'kelley-atomic-pool',
  number: 7,
  claim: {
    author: 'Michael Kelley',
    source: 'seed 000_6d5dc4262ceed328.txt (reply in the "[RFC 0/7] Introduce swiotlb throttling" thread, Aug 2024)',
    quote: 'The transient buffer memory comes from the atomic pool, which typically isn\'t that large and could itself become exhausted.',
  },
  setup: 'jobs/nic-burst.fio (64 KiB NIC receive buffers, 8 clones) at iodepth 64: 32 MiB of non-blocking maps wanted at once against a 1 MiB default pool, --policy dynamic (mainline CONFIG_SWIOTLB_DYNAMIC), 2 vCPUs. Every map that finds the pools full takes a transient pool from the atomic DMA pool (GFP_NOWAIT, __GFP_NOWARN) while the growth worker adds 1 MiB pools; the atomic pool\'s kworker expands it when it runs low. The atomic pools are the kernel\'s default for the guest (dma_atomic_pool_init: 128 KiB per GiB of RAM, at least 128 KiB, at most 4 MiB, per pool), on guests of 1, 4 and 16 GiB. "When": the first map failure of a run (with dynamic on, a transient pool the atomic pool could not give), in seconds since the run started, from the run\'s log.',
  cannot: 'set_memory_decrypted costs nothing here (--decrypt-latency 0: no measured figure was found to cite); in a real CoCo guest each expansion of the atomic pool and each dynamic pool is a hypercall, so the kworker falls behind sooner and exhaustion comes earlier and more often than these runs show. The NIC is a model that posts receive buffers as fast as the vCPU maps them.',
  rule: 'A guest\'s atomic pool runs out when most of its ok runs (more than half) refuse a transient pool for want of atomic-pool memory. Reproduced when the default atomic pool runs out at every guest size; partly when it does at some; refuted when at none.',
  forms: {
    full: 'the three guest sizes, 1 s per run, 3 repeats each.',
    quick: 'the three guest sizes, 1 s per run (as the full form: whether the kworker keeps up is decided over the burst, and 500 ms runs sometimes ended before the 1 GiB guest ran out), 1 run each.',
  },
  repeats: { full: 3, quick: 1 },
  timingDependent: 'whether the 1 GiB guest\'s 128 KiB atomic pool runs out is a race between the burst and the pool\'s kworker, which the host schedules: on a quiet 2-core host single 1 s runs went either way (3 of 5 ran out)',
  async run(ctx) {
    const vcpus = 2;
    const runtime = '1s';
    const job = ctx.file('nic-burst-64.fio', overrideJob(readFileSync(shippedJob('nic-burst.fio'), 'utf8'), { iodepth: 64 }));
    const cells: Cell[] = [];
    for (const mem of GUESTS) {
      const base = config({ job, vcpus, mem, pool: { swiotlb: '1M' }, policy: 'dynamic', runtime });
      cells.push(cellOf(`${mem} guest`, await ctx.run(repeated(base, ctx.repeat))));
    }
    return { vcpus, runtime, cells };
  },
  judge(f) {
    const text = (c: Cell) => `${c.atomic}${c.atomic_pool_size !== null ? ` (${formatBytes(c.atomic_pool_size)} per pool)` : ''}: ${c.runs_exhausted} of ${c.runs - c.not_ok} runs refused transient pools (median ${c.transient_failed_atomic?.median ?? '-'} refused, ${c.transient_created?.median ?? '-'} made${c.first_failure_s !== null ? `, first at ${c.first_failure_s.toFixed(2)} s` : ''})`;
    const out = f.cells.filter(majority);
    const all = f.cells.map(text).join('; ');
    if (f.cells.length > 0 && out.length === f.cells.length) return { verdict: 'reproduced', why: `The kernel's default atomic pool ran out under the burst at every guest size: ${all}.` };
    if (out.length > 0) return { verdict: 'partly', why: `The default atomic pool ran out only in the smaller guests (${out.map((c) => c.atomic).join(', ')}); in the others its kworker kept up: ${all}.` };
    return { verdict: 'refuted', why: `The default atomic pool never ran out: ${all}.` };
  },
  table(f) {
    return {
      head: ['guest (atomic pool)', '>runs ok', '>runs exhausted', '>transient made', '>refused (atomic)', '>exhaustions', '>expansions', '>atomic size at end', '>dynamic pools', '>drops', '>first failure'],
      rows: f.cells.map((c) => [
        `${c.atomic}${c.atomic_pool_size !== null ? ` (${formatBytes(c.atomic_pool_size)})` : ''}`, `${c.runs - c.not_ok}/${c.runs}`, String(c.runs_exhausted), cell('count', c.transient_created),
        cell('count', c.transient_failed_atomic), cell('count', c.exhaustions), cell('count', c.expansions), cell('bytes', c.atomic_size_end), cell('count', c.dynamic_pools), cell('count', c.drops),
        c.first_failure_s === null ? '-' : `${c.first_failure_s.toFixed(2)} s`,
      ]),
    };
  },
  chart(f) {
    return {
      title: 'Transient pools made and refused by the atomic pool (median per run)',
      kind: 'bars', xLabel: 'guest', yLabel: 'transient pools', x: f.cells.map((c) => c.atomic),
      series: [
        { label: 'made', values: f.cells.map((c) => c.transient_created?.median ?? null) },
        { label: 'refused (atomic pool exhausted)', values: f.cells.map((c) => c.transient_failed_atomic?.median ?? null) },
        { label: 'atomic pool expansions', values: f.cells.map((c) => c.expansions?.median ?? null) },
      ],
    };
  },
};
