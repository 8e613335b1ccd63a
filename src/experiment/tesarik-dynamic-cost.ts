// Experiment 8, tesarik-dynamic-cost: Petr Tesarik (seed 004) on dynamic swiotlb: it "trades a bit of
// performance for not having to figure out the optimal swiotlb size at boot time". Two measurements:
// the cost of one map+unmap (npm run bench's dynamic rows, src/bench/dynamic-bench.ts: one thread, the
// swiotlb core, no VM) with the dynamic build against a static build, and as full dynamic pools pile
// up in front of the default pool; and a job's throughput in the VM, dynamic on against off, on a pool
// large enough that nothing grows.
import { dynamicPoolsRate, staticRate } from '../bench/dynamic-bench.js';
import type { Spread } from '../sweep/figures.js';
import { spreadOf } from '../sweep/figures.js';
import { cell, config, median, notOk, pct, repeated, shippedJob, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** "A bit": at most this much slower than the static build. */
export const A_BIT = 0.25;

interface CoreRow {
  /** Full dynamic pools in front of the default pool; null: the static build. */
  pools: number | null;
  /** Map+unmap pairs per second over the rounds. */
  pairs_per_s: Spread | null;
  /** Static build's rate over this row's, per round (measured side by side), median over the rounds: 1.1 = 10% slower. */
  slowdown: number | null;
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
  setup: 'Core: 4 KiB map+unmap pairs on one thread against a 512-slot, one-area default pool (the bench\'s dynamic rows), a static build (no CONFIG_SWIOTLB_DYNAMIC) against the dynamic build with 0, 1, 16, 64 and 256 full 1 MiB dynamic pools in front of the default pool (every map searches each of them first and every unmap walks the pool list to the default pool: the linear lookup of swiotlb_find_pool). Rounds of the rows side by side, after one warm-up round; a row\'s slowdown is the static rate over its rate in the same round, median over the rounds. VM: jobs/randrw-4k.fio on 2 vCPUs with a 16 MiB pool (it needs 64 slots, so nothing grows), --policy static against --policy dynamic, repeated.',
  cannot: 'The core rows measure this emulator\'s TypeScript code paths, not the kernel\'s C (RCU list walks, the per-device transient list, cache effects); the pool counts are a sweep, not what a guest accumulates (pools are never freed, so a spike\'s pools stay). The VM\'s throughput on a shared host varies between repeats by more than the effect (see tesarik-spread), so it is reported with its spread and does not decide.',
  rule: `Two parts from the core rows: (a) the dynamic build with no dynamic pools costs "a bit": its slowdown against the static build is at most ${pct(A_BIT, 0)}; (b) it stays a bit as pools accumulate: the slowdown at the most pools measured is at most ${pct(A_BIT, 0)} too. Reproduced when both hold; partly when only (a) does; refuted when (a) does not.`,
  forms: {
    full: 'core rows at 0, 1, 16, 64 and 256 pools, 7 rounds of 0.3 s windows; VM runs of 2 s, 3 repeats of each policy.',
    quick: 'core rows at 0 and 256 pools, 3 rounds of 0.1 s windows; VM runs of 300 ms, 1 of each policy.',
  },
  repeats: { full: 3, quick: 1 },
  timingDependent: 'its verdict is a ratio of measured map+unmap rates, which the host decides (a speed is never asserted in a test): a clean CI run measured the empty dynamic build 73% slower than static where the recorded quick form measured -15%',
  async run(ctx) {
    const rounds = ctx.quick ? 3 : 7;
    const window = ctx.quick ? 0.1 : 0.3;
    const counts = ctx.quick ? [0, 256] : [0, 1, 16, 64, 256];
    ctx.progress(`core rows: ${rounds} rounds`);
    const measureRound = () => ({ stat: staticRate(window), dyn: counts.map((n) => dynamicPoolsRate(n, window)) });
    measureRound(); // warm-up: every path compiled before a round counts
    const per = Array.from({ length: rounds }, measureRound);
    const core: CoreRow[] = [
      { pools: null, pairs_per_s: spreadOf(per.map((p) => Math.round(p.stat))), slowdown: 1 },
      ...counts.map((n, i) => ({ pools: n, pairs_per_s: spreadOf(per.map((p) => Math.round(p.dyn[i]!))), slowdown: median(per.map((p) => p.stat / p.dyn[i]!)) })),
    ];
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
    const slow = (r: CoreRow | undefined) => (r?.slowdown == null ? 'not measured' : r.slowdown >= 1 ? `${pct(r.slowdown - 1, 0)} slower than static` : `${pct(1 - r.slowdown, 0)} faster than static (noise)`);
    const a = none?.slowdown != null && none.slowdown - 1 <= A_BIT;
    const b = most?.slowdown != null && most.slowdown - 1 <= A_BIT;
    const vmRatio = (() => {
      const s = f.vm.find((v) => v.policy === 'static')?.iops?.median;
      const d = f.vm.find((v) => v.policy === 'dynamic')?.iops?.median;
      return s === undefined || d === undefined || s === 0 ? '' : `; in the VM dynamic on ran at ${pct(d / s, 0)} of off's IOPS (not deciding: host noise)`;
    })();
    const text = `with no dynamic pools a map+unmap was ${slow(none)}, with ${most?.pools ?? '-'} pools ${slow(most)}${vmRatio}`;
    if (a && b) return { verdict: 'reproduced', why: `Dynamic swiotlb costs a bit, and stays a bit as pools accumulate: ${text}.` };
    if (a) return { verdict: 'partly', why: `It costs a bit while there are no dynamic pools, far more once they accumulate: ${text}.` };
    return { verdict: 'refuted', why: `Dynamic swiotlb costs more than a bit even with no dynamic pools: ${text}.` };
  },
  table(f) {
    const core = f.core.map((r) => [
      r.pools === null ? 'core: static build' : `core: dynamic, ${r.pools} full pools`, cell('count', r.pairs_per_s), r.slowdown === null ? '-' : pct(r.slowdown - 1, 0), '-', '-',
    ]);
    const vm = f.vm.map((v) => [`VM: randrw-4k, --policy ${v.policy} (${v.runs - v.not_ok}/${v.runs} ok)`, '-', '-', cell('iops', v.iops), cell('us', v.clat_p99)]);
    return { head: ['measurement', '>map+unmap pairs/s', '>slower than static', '>IOPS', '>p99'], rows: [...core, ...vm] };
  },
  chart(f) {
    const dyn = f.core.filter((r) => r.pools !== null);
    return {
      title: 'Map+unmap cost against the static build as full dynamic pools accumulate (static rate / dynamic rate)',
      kind: 'lines', xLabel: 'full dynamic pools in front of the default pool', yLabel: 'static rate / dynamic rate', x: dyn.map((r) => r.pools!),
      series: [{ label: 'slowdown (1 = as fast as static)', values: dyn.map((r) => r.slowdown) }, { label: `"a bit" (${1 + A_BIT})`, values: dyn.map(() => 1 + A_BIT) }],
    };
  },
};
