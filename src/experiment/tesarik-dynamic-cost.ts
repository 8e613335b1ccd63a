// Experiment 8, tesarik-dynamic-cost: Petr Tesarik (seed 004) on dynamic swiotlb: it "trades a bit of
// performance for not having to figure out the optimal swiotlb size at boot time". Two measurements:
// the cost of one map+unmap (npm run bench's dynamic rows, src/bench/dynamic-bench.ts: one thread, the
// swiotlb core, no VM) with the dynamic build against a static build, and as full dynamic pools pile
// up in front of the default pool; and a job's throughput in the VM, dynamic on against off, on a pool
// large enough that nothing grows.
//
// What decides is counted, not timed: the work of one pair (area-lock acquisitions, and the pool-list
// entries swiotlb_find_pool examines), which is the same on any host. The pairs' measured rates,
// rounds of every row side by side in one run, are shown beside the counts and do not decide: their
// ratio is the host's (one clean run measured the empty dynamic build 73% slower, another 15% faster).
import { type BenchPair, dynamicPoolsPair, rate, staticPair } from '../bench/dynamic-bench.js';
import { P_AREA_LOCK_ACQUIRED, setInstrumentHook } from '../swiotlb/instrument.js';
import type { Spread } from '../sweep/figures.js';
import { spreadOf } from '../sweep/figures.js';
import { cell, config, notOk, pct, repeated, shippedJob, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** "A bit": at most this much slower than the static build. */
export const A_BIT = 0.25;

interface CoreRow {
  /** Full dynamic pools in front of the default pool; null: the static build. */
  pools: number | null;
  /** Counted, per pair: area-lock acquisitions (the map's searches and the unmap's release). */
  locks: number;
  /** Counted, per pair: pool-list entries swiotlb_find_pool examines to find the pair's pool. */
  lookups: number;
  /** (locks + lookups) over the static build's: what decides. */
  work_ratio: number;
  /** Map+unmap pairs per second over the rounds. */
  pairs_per_s: Spread | null;
  /** Static build's rate over this row's, per round (measured side by side): median and range over the rounds, 1.1 = 10% slower; not deciding. */
  slowdown: Spread | null;
}

interface VmRow {
  policy: 'static' | 'dynamic';
  runs: number;
  not_ok: number;
  iops: Spread | null;
  clat_p99: Spread | null;
}

export interface DynamicCostFigures {
  rounds: number;
  window_s: number;
  core: CoreRow[];
  vm: VmRow[];
}

export const tesarikDynamicCost: Experiment<DynamicCostFigures> = {
  name: 'tesarik-dynamic-cost',
  number: 8,
  claim: {
    author: 'Petr Tesarik',
    source: 'seed 004_1f950bfd8750b483.txt ("[PATCH v2 0/7] Allow dynamic allocation of software IO TLB bounce buffers", May 2023)',
    quote: 'However, keep in mind that this implementation adds a bit of overhead. In short, it trades a bit of performance for not having to figure out the optimal swiotlb size at boot time.',
  },
  setup: 'Core: 4 KiB map+unmap pairs on one thread against a 512-slot, one-area default pool (the bench\'s dynamic rows), a static build (no CONFIG_SWIOTLB_DYNAMIC) against the dynamic build with 0, 1, 16, 64 and 256 full 1 MiB dynamic pools in front of the default pool (every map searches each of them first and every unmap walks the pool list to the default pool: the linear lookup of swiotlb_find_pool). Counted (what decides, the same on any host): per pair, the area-lock acquisitions (the instrumentation point every area lock passes, counted over 64 pairs after a warm-up) and the pool-list entries swiotlb_find_pool examines to find the pair\'s pool; a row\'s work is their sum, its work ratio that over the static build\'s. Measured (shown, not deciding): rounds of every row side by side in one run, after one warm-up round; a row\'s slowdown is the static rate over its rate in the same round, median and range over the rounds. VM (shown, not deciding): jobs/randrw-4k.fio on 2 vCPUs with a 16 MiB pool (it needs 64 slots, so nothing grows), --policy static against --policy dynamic, repeated.',
  cannot: 'The counts are of this emulator\'s code paths, which follow the kernel\'s step for step in the work that grows with the pools (a search per pool, a list entry per pool); the dynamic build\'s fixed checks (dma_uses_io_tlb, rcu_read_lock, the load of the pool list) are the same in every dynamic row and are not counted, so with no dynamic pools the counted work is the static build\'s and "a bit" is the measured part. The core rows time TypeScript, not the kernel\'s C (RCU, cache effects), and on a shared host the measured slowdown of the empty dynamic build has been anywhere from 15% faster to 73% slower between clean runs, so it does not decide; the pool counts are a sweep, not what a guest accumulates (pools are never freed, so a spike\'s pools stay). The VM\'s throughput varies between repeats by more than the effect (see tesarik-spread).',
  rule: `Counted, from the core rows: (a) the dynamic build with no dynamic pools costs "a bit": its work per pair is at most ${pct(A_BIT, 0)} above the static build\'s; (b) it stays a bit as pools accumulate: the work at the most pools counted is at most ${pct(A_BIT, 0)} above it too. Reproduced when both hold; partly when only (a) does; refuted when (a) does not. The measured slowdowns and the VM\'s IOPS do not decide: they are the host\'s.`,
  forms: {
    full: 'core rows at 0, 1, 16, 64 and 256 pools, counted, and timed in 7 rounds of 0.3 s windows; VM runs of 2 s, 3 repeats of each policy.',
    quick: 'core rows at 0 and 256 pools, counted (the same counts as the full form), and timed in 3 rounds of 0.1 s windows; VM runs of 300 ms, 1 of each policy.',
  },
  repeats: { full: 3, quick: 1 },
  async run(ctx) {
    const rounds = ctx.quick ? 3 : 7;
    const window = ctx.quick ? 0.1 : 0.3;
    const counts = ctx.quick ? [0, 256] : [0, 1, 16, 64, 256];
    const rows: { pools: number | null; p: BenchPair }[] = [{ pools: null, p: staticPair() }, ...counts.map((n) => ({ pools: n, p: dynamicPoolsPair(n) }))];
    ctx.progress('core rows: counted');
    const work = rows.map((r) => pairWork(r.p));
    ctx.progress(`core rows: ${rounds} rounds`);
    const measureRound = () => rows.map((r) => rate(window, r.p.pair));
    measureRound(); // warm-up: every path compiled before a round counts
    const per = Array.from({ length: rounds }, measureRound);
    const w0 = work[0]!.locks + work[0]!.lookups;
    const core: CoreRow[] = rows.map((r, i) => ({
      pools: r.pools, locks: work[i]!.locks, lookups: work[i]!.lookups, work_ratio: (work[i]!.locks + work[i]!.lookups) / w0,
      pairs_per_s: spreadOf(per.map((p) => Math.round(p[i]!))), slowdown: i === 0 ? null : spreadOf(per.map((p) => p[0]! / p[i]!)),
    }));
    const runtime = ctx.quick ? '300ms' : '2s';
    const vm: VmRow[] = [];
    for (const policy of ['static', 'dynamic'] as const) {
      const recs = await ctx.run(repeated(config({ job: shippedJob('randrw-4k.fio'), vcpus: 2, mem: '4G', pool: { swiotlb: '16M' }, policy, runtime }), ctx.repeat));
      vm.push({ policy, runs: recs.length, not_ok: notOk(recs).length, iops: spreadFig(recs, 'iops'), clat_p99: spreadFig(recs, 'clat_p99') });
    }
    return { rounds, window_s: window, core, vm };
  },
  judge(f) {
    const dyn = f.core.filter((r) => r.pools !== null);
    const none = dyn.find((r) => r.pools === 0);
    const most = dyn.reduce<CoreRow | undefined>((m, r) => (m === undefined || r.pools! > m.pools! ? r : m), undefined);
    const stat = f.core.find((r) => r.pools === null);
    const work = (r: CoreRow | undefined) => (r === undefined ? 'not counted'
      : `${r.locks} lock acquisitions and ${r.lookups} list ${r.lookups === 1 ? 'entry' : 'entries'} per pair${r.pools === null ? '' : ` (${r.work_ratio === 1 ? 'as static' : `${r.work_ratio.toFixed(r.work_ratio < 10 ? 2 : 0)}x static`})`}`);
    const slow = (r: CoreRow | undefined) => (r?.slowdown == null ? '-' : `${pct(r.slowdown.median - 1, 0)}${r.slowdown.n > 1 ? ` (${pct(r.slowdown.min - 1, 0)} to ${pct(r.slowdown.max - 1, 0)})` : ''}`);
    const a = none !== undefined && none.work_ratio - 1 <= A_BIT;
    const b = most !== undefined && most.work_ratio - 1 <= A_BIT;
    const vmRatio = (() => {
      const s = f.vm.find((v) => v.policy === 'static')?.iops?.median;
      const d = f.vm.find((v) => v.policy === 'dynamic')?.iops?.median;
      return s === undefined || d === undefined || s === 0 ? '' : `; in the VM dynamic on ran at ${pct(d / s, 0)} of off's IOPS`;
    })();
    const text = `static ${work(stat)}; with no dynamic pools ${work(none)}, with ${most?.pools ?? '-'} pools ${work(most)} (measured, not deciding: ${slow(none)} and ${slow(most)} slower than static${vmRatio})`;
    if (a && b) return { verdict: 'reproduced', why: `Dynamic swiotlb costs a bit, and stays a bit as pools accumulate: ${text}.` };
    if (a) return { verdict: 'partly', why: `It costs a bit while there are no dynamic pools, far more once they accumulate: ${text}.` };
    return { verdict: 'refuted', why: `Dynamic swiotlb costs more than a bit even with no dynamic pools: ${text}.` };
  },
  table(f) {
    const core = f.core.map((r) => [
      r.pools === null ? 'core: static build' : `core: dynamic, ${r.pools} full pools`, String(r.locks), String(r.lookups), r.work_ratio.toFixed(2), cell('count', r.pairs_per_s),
      r.slowdown === null ? '-' : `${pct(r.slowdown.median - 1, 0)}${r.slowdown.n > 1 ? ` (${pct(r.slowdown.min - 1, 0)}..${pct(r.slowdown.max - 1, 0)})` : ''}`, '-', '-',
    ]);
    const vm = f.vm.map((v) => [`VM: randrw-4k, --policy ${v.policy} (${v.runs - v.not_ok}/${v.runs} ok)`, '-', '-', '-', '-', '-', cell('iops', v.iops), cell('us', v.clat_p99)]);
    return { head: ['measurement', '>lock acquisitions per pair', '>list entries per lookup', '>work / static', '>map+unmap pairs/s', '>measured slower than static', '>IOPS', '>p99'], rows: [...core, ...vm] };
  },
  chart(f) {
    const dyn = f.core.filter((r) => r.pools !== null);
    return {
      title: 'Map+unmap cost against the static build as full dynamic pools accumulate: counted work, and measured rates (static rate / dynamic rate)',
      kind: 'lines', xLabel: 'full dynamic pools in front of the default pool', yLabel: 'ratio to the static build', x: dyn.map((r) => r.pools!),
      series: [
        { label: 'counted work / static', values: dyn.map((r) => r.work_ratio) },
        { label: 'measured slowdown (median; not deciding)', values: dyn.map((r) => r.slowdown?.median ?? null) },
        { label: `"a bit" (${1 + A_BIT})`, values: dyn.map(() => 1 + A_BIT) },
      ],
    };
  },
};

/** Counted work of one pair, after a warm-up pair: area-lock acquisitions (over 64 pairs) and the pool-list entries swiotlb_find_pool examines. */
export function pairWork(p: BenchPair): { locks: number; lookups: number } {
  const pairs = 64;
  let a = p.pair();
  let locks = 0;
  setInstrumentHook((point) => {
    if (point === P_AREA_LOCK_ACQUIRED) locks++;
  });
  try {
    for (let i = 0; i < pairs; i++) a = p.pair();
  } finally {
    setInstrumentHook(null);
  }
  const pool = p.mem.findPool(p.dev, a);
  if (pool === null || locks % pairs !== 0) throw new Error(`tesarik-dynamic-cost: the pair's work is not the same every time (${locks} lock acquisitions in ${pairs} pairs)`);
  return { locks: locks / pairs, lookups: p.mem.pools.indexOf(pool) + 1 };
}
