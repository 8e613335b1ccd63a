// Experiment 6, annapurve-fragmentation: seed 002 (Vishal Annapurve and Michael Kelley): dynamic
// swiotlb grows by one physically contiguous chunk, so in a guest whose memory is fragmented growth
// fails, and 2 MiB (hugepage-sized) chunks are about as likely to fail as 1 MiB ones.
//
// The chunk size is the kernel's, not a knob: swiotlb_dyn_alloc asks for the default pool's size
// (default_nslabs, capped at 4 MiB), halving to 1 MiB when no block that large is free. A 1 MiB default
// pool therefore grows in 1 MiB chunks and a 2 MiB one tries 2 MiB first: the rate compared is that of
// the attempts at the chunk size (the report's dynamic.growth.attempts by size), not of the fallback.
import type { RunRecord } from '../sweep/run.js';
import { config, notOk, pct, repeated, reports, shippedJob } from './measure.js';
import type { Experiment } from './types.js';

/** Equal bytes at every order 0..8 of DMA32, 15% of its 2 GiB free on a 4 GiB guest: no free block above 1 MiB. */
export const LARGEST_1M_SNAPSHOT = 'Node 0, zone    DMA32   8738   4369   2184   1092    546    273    136     68     34      0      0\n';

export const CHUNKS = [1, 2] as const; // MiB

/** A level: its name, the largest free block it leaves below 4 GiB, and how the VM is given it. */
interface Level {
  name: string;
  largest: string;
  flags: Record<string, string>;
}

interface Cell {
  level: string;
  largest: string;
  chunk_mib: number;
  runs: number;
  not_ok: number;
  /** Attempts at the chunk size over the ok runs, and those that got a block. */
  attempts: number;
  ok: number;
  /** ok / attempts; null when growth never tried that size. */
  rate: number | null;
  map_failures_median: number | null;
}

export interface FragmentationFigures {
  runtime: string;
  cells: Cell[];
}

function cellOf(level: Level, chunk: number, recs: RunRecord[]): Cell {
  const bytes = chunk * 2 ** 20;
  let attempts = 0;
  let ok = 0;
  const reps = reports(recs);
  for (const r of reps) {
    const a = r.dynamic.growth?.attempts.find((x) => x.bytes === bytes);
    attempts += a?.attempts ?? 0;
    ok += a?.ok ?? 0;
  }
  const fails = reps.map((r) => r.swiotlb.map_failures).sort((x, y) => x - y);
  return {
    level: level.name, largest: level.largest, chunk_mib: chunk, runs: recs.length, not_ok: notOk(recs).length, attempts, ok,
    rate: attempts === 0 ? null : ok / attempts, map_failures_median: fails.length === 0 ? null : fails[fails.length >> 1]!,
  };
}

/** Chunk sizes equally likely to fail: their success rates within this of each other. */
export const EQUAL_WITHIN = 0.2;

export const annapurveFragmentation: Experiment<FragmentationFigures> = {
  name: 'annapurve-fragmentation',
  number: 6,
  claim: {
    author: 'Vishal Annapurve (replying to Michael Kelley)',
    source: 'seed 002_ef0d7c94056be6a8.txt ("Re: [RFC V1 1/5] swiotlb: Support allocating DMA memory from SWIOTLB", Feb 2024)',
    quote: 'it should be relatively easy to append hugepage alignment restrictions for SWIOTLB pool increments (inline with the fact that 2MB vs 1MB size allocations are nearly equally prone to failure due to memory fragmentation).',
  },
  setup: 'jobs/dynamic-grow.fio (256 KiB writes, 16 MiB in flight) with dynamic swiotlb on, 1 vCPU, a 4 GiB guest whose memory starts at a fragmentation level: none (as booted), light (half free, blocks of every order), moderate (a quarter free, nothing above 2 MiB), a snapshot with nothing above 1 MiB (equal bytes at orders 0-8, --buddyinfo), severe (a tenth free, nothing above 512 KiB), and the shipped jobs/buddyinfo-fragmented.txt (nothing above 512 KiB). The growth chunk is the default pool\'s size, as in the kernel: a 1 MiB pool grows in 1 MiB chunks, a 2 MiB pool tries 2 MiB (buddy order 9, naturally hugepage-aligned) first. Success rate: attempts at the chunk size that got a block, over every ok run.',
  cannot: 'The levels are synthetic shapes of free memory (equal bytes per order up to a largest order), not an aged guest\'s: how often a real long-running CoCo VM has a free 1 MiB block but no 2 MiB one is what decides the claim, and the emulator cannot say it. Migratetypes, compaction and reclaim are not modelled: a real kernel may compact memory to satisfy the allocation.',
  rule: `Two parts: (a) fragmentation makes growth fail: at the most fragmented named level (severe) at most half the attempts succeed at each chunk size run there, where unfragmented (none) at least 90% do at each; (b) 2 MiB and 1 MiB are about equally prone to failure: at every level their success rates are within ${EQUAL_WITHIN * 100} percentage points. Reproduced when both hold; partly when one does; refuted when neither does.`,
  forms: {
    full: 'all six levels, both chunk sizes, 1 s per run, 2 repeats each.',
    quick: 'the 1 MiB snapshot at both chunk sizes, none at 1 MiB and severe at 2 MiB, 300 ms per run, 1 run each.',
  },
  repeats: { full: 2, quick: 1 },
  async run(ctx) {
    const runtime = ctx.quick ? '300ms' : '1s';
    const snapshot = ctx.file('largest-1m.buddyinfo', LARGEST_1M_SNAPSHOT);
    const all: Level[] = [
      { name: 'none', largest: '4 MiB', flags: { fragmentation: 'none' } },
      { name: 'light', largest: '4 MiB', flags: { fragmentation: 'light' } },
      { name: 'moderate', largest: '2 MiB', flags: { fragmentation: 'moderate' } },
      { name: 'largest free 1 MiB (snapshot)', largest: '1 MiB', flags: { buddyinfo: snapshot } },
      { name: 'severe', largest: '512 KiB', flags: { fragmentation: 'severe' } },
      { name: 'jobs/buddyinfo-fragmented.txt', largest: '512 KiB', flags: { buddyinfo: shippedJob('buddyinfo-fragmented.txt') } },
    ];
    // The quick form: the snapshot at both chunk sizes (part b), none and severe at one each (part a).
    const quickCells: Record<string, readonly number[]> = { none: [1], 'largest free 1 MiB (snapshot)': [1, 2], severe: [2] };
    const cells: Cell[] = [];
    for (const level of all) {
      const chunks = ctx.quick ? (quickCells[level.name] ?? []) : CHUNKS;
      for (const chunk of chunks) {
        const c = config({ job: shippedJob('dynamic-grow.fio'), vcpus: 1, mem: '4G', pool: { swiotlb: `${chunk}M` }, policy: 'dynamic', runtime, knobs: level.flags });
        cells.push(cellOf(level, chunk, await ctx.run(repeated(c, ctx.repeat))));
      }
    }
    return { runtime, cells };
  },
  judge(f) {
    const rates = (level: string) => CHUNKS.map((c) => f.cells.find((x) => x.level === level && x.chunk_mib === c)?.rate ?? null);
    const none = rates('none');
    const severe = rates('severe');
    const a = none.some((r) => r !== null) && none.every((r) => r === null || r >= 0.9) && severe.some((r) => r !== null) && severe.every((r) => r === null || r <= 0.5);
    const levels = [...new Set(f.cells.map((c) => c.level))];
    const gaps = levels.map((l) => ({ l, r: rates(l) })).filter((x) => x.r.every((v) => v !== null)).map((x) => ({ l: x.l, gap: Math.abs(x.r[0]! - x.r[1]!), r: x.r }));
    const unequal = gaps.filter((g) => g.gap > EQUAL_WITHIN);
    const b = gaps.length > 0 && unequal.length === 0;
    const at = (r: Array<number | null>) => `1 MiB ${pct(r[0] ?? null, 0)}, 2 MiB ${pct(r[1] ?? null, 0)}`;
    const aText = `growth succeeded at none ${at(none)}, at severe ${at(severe)}`;
    const bText = unequal.length === 0 ? `the two chunk sizes' rates were within ${EQUAL_WITHIN * 100} points at every level` : `they differ at ${unequal.map((g) => `${g.l} (${at(g.r)})`).join(', ')}`;
    if (a && b) return { verdict: 'reproduced', why: `Fragmentation made growth fail (${aText}) and ${bText}.` };
    if (a || b) return { verdict: 'partly', why: `${a ? 'Fragmentation made growth fail' : 'Fragmentation did not make growth fail as claimed'} (${aText}); ${b ? bText : `but the chunk sizes are not equally prone to failure: ${bText}`}.` };
    return { verdict: 'refuted', why: `Neither part holds: ${aText}; ${bText}.` };
  },
  table(f) {
    return {
      head: ['level', 'largest free block', '>chunk', '>runs ok', '>attempts at chunk', '>succeeded', '>success rate', '>map failures'],
      rows: f.cells.map((c) => [c.level, c.largest, `${c.chunk_mib} MiB`, `${c.runs - c.not_ok}/${c.runs}`, String(c.attempts), String(c.ok), pct(c.rate, 0), c.map_failures_median === null ? '-' : String(c.map_failures_median)]),
    };
  },
  chart(f) {
    const levels = [...new Set(f.cells.map((c) => c.level))];
    return {
      title: 'Growth success rate by fragmentation level and chunk size (%)',
      kind: 'bars', xLabel: 'fragmentation level', yLabel: 'attempts that got a block, %', x: levels,
      series: CHUNKS.map((c) => ({ label: `${c} MiB chunks`, values: levels.map((l) => { const r = f.cells.find((x) => x.level === l && x.chunk_mib === c)?.rate; return r === null || r === undefined ? null : r * 100; }) })),
    };
  },
};
