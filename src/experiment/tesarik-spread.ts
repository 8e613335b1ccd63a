// Experiment 5, tesarik-spread: Petr Tesarik (seed 001) found that two consecutive fio runs differed by
// as much as 10%, which made his swiotlb measurements invalid. Here: the spread of the same seeded run
// repeated, for throughput, latency, map failures and the high-water mark, against his 10%.
import type { Spread } from '../sweep/figures.js';
import { cell, config, figure, notOk, pct, repeated, shippedJob, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** His bound: runs that differ by at most this much agree with "as much as 10%". */
export const TESARIK_BOUND = 0.1;

/** The figures whose spread is measured (the sweep's figures by name). */
export const SPREAD_FIGURES = ['iops', 'clat_p50', 'clat_p99', 'map_failures', 'hiwater'] as const;

interface Load {
  label: string;
  runs: number;
  not_ok: number;
  figures: Record<(typeof SPREAD_FIGURES)[number], Spread | null>;
}

export interface TesarikSpreadFigures {
  runtime: string;
  loads: Load[];
}

/** A figure's spread for the rule: (max-min)/median; when the median is 0, 0 if every repeat is 0, else unbounded. */
export function spreadValue(s: Spread | null): number | null {
  if (s === null) return null;
  return s.spread === null ? Number.POSITIVE_INFINITY : s.spread;
}

export const tesarikSpread: Experiment<TesarikSpreadFigures> = {
  name: 'tesarik-spread',
  number: 5,
  claim: {
    author: 'Petr Tesarik',
    source: 'seed 001_e01aa2feb9761e3e.txt ("[RFC v1 0/4] Allow dynamic allocation of software IO TLB bounce buffers", Mar 2023)',
    quote: 'It appears that I/O, bandwidth and latencies reported by two consecutive fio runs may differ by as much as 10%, so the results are invalid.',
  },
  setup: 'The same run repeated with the same seed (so every random choice of the workload is the same, and what differs is the host\'s scheduling of the vCPU and device threads): jobs/randrw-4k.fio (4 KiB random I/O, a pool far larger than it needs) and jobs/heavy.fio (a pool it overruns, so map failures happen), 2 vCPUs, --mem 4G, static policy. For each figure the spread is (max-min)/median over the repeats, the sweep\'s spread, which for two runs is their difference over their mean.',
  cannot: 'His runs were on a Raspberry Pi 4 with a real USB disk and filesystem; the emulator\'s noise is its host\'s (here a shared, loaded machine), not a device\'s. A spread over N repeats is at least the largest difference between two consecutive ones, so N > 2 can only make ours look larger.',
  rule: `A figure agrees with his bound when its spread over the repeats is at most ${pct(TESARIK_BOUND, 0)} (a figure that is 0 in every repeat has spread 0). Reproduced when every figure of every load agrees (our runs differ by no more than his); refuted when none does; partly otherwise.`,
  forms: {
    full: 'both loads, 8 repeats each, 2 s per run.',
    quick: 'randrw-4k only, 3 repeats, 300 ms per run.',
  },
  repeats: { full: 8, quick: 3 },
  async run(ctx) {
    const runtime = ctx.quick ? '300ms' : '2s';
    const loads: Load[] = [];
    const all = [['randrw-4k, 16M pool', 'randrw-4k.fio', '16M'], ['heavy, 4M pool', 'heavy.fio', '4M']] as const;
    for (const [label, job, pool] of ctx.quick ? all.slice(0, 1) : all) {
      const recs = await ctx.run(repeated(config({ job: shippedJob(job), vcpus: 2, mem: '4G', pool: { swiotlb: pool }, runtime }), ctx.repeat));
      loads.push({ label, runs: recs.length, not_ok: notOk(recs).length, figures: Object.fromEntries(SPREAD_FIGURES.map((n) => [n, spreadFig(recs, n)])) as Load['figures'] });
    }
    return { runtime, loads };
  },
  judge(f) {
    const all = f.loads.flatMap((l) => SPREAD_FIGURES.map((n) => ({ load: l.label, name: n, s: spreadValue(l.figures[n]) })).filter((x) => x.s !== null));
    const within = all.filter((x) => x.s! <= TESARIK_BOUND);
    const beyond = all.filter((x) => x.s! > TESARIK_BOUND);
    const show = (xs: typeof all) => xs.map((x) => `${x.name} ${Number.isFinite(x.s!) ? pct(x.s!, 0) : '(median 0, not all 0)'} (${x.load})`).join(', ');
    const text = `within ${pct(TESARIK_BOUND, 0)}: ${within.length > 0 ? show(within) : 'none'}; beyond: ${beyond.length > 0 ? show(beyond) : 'none'}`;
    if (all.length > 0 && beyond.length === 0) return { verdict: 'reproduced', why: `Repeats of the same seeded run differ by no more than his 10%: ${text}.` };
    if (within.length === 0) return { verdict: 'refuted', why: `Every figure differs between repeats by more than his 10%: ${text}.` };
    return { verdict: 'partly', why: `Some figures repeat within his 10% and some do not: ${text}.` };
  },
  table(f) {
    return {
      head: ['load', '>runs ok', ...SPREAD_FIGURES.map((n) => `>${figure(n).label}`)],
      rows: f.loads.map((l) => [l.label, `${l.runs - l.not_ok}/${l.runs}`, ...SPREAD_FIGURES.map((n) => cell(figure(n).unit, l.figures[n]))]),
    };
  },
  chart(f) {
    return {
      title: 'Spread of each figure over the repeats, (max-min)/median in %, against his 10%',
      kind: 'bars', xLabel: 'figure', yLabel: 'spread %', x: [...SPREAD_FIGURES],
      series: [
        ...f.loads.map((l) => ({ label: l.label, values: SPREAD_FIGURES.map((n) => { const s = spreadValue(l.figures[n]); return s === null || !Number.isFinite(s) ? null : s * 100; }) })),
        { label: 'his 10%', values: SPREAD_FIGURES.map(() => TESARIK_BOUND * 100) },
      ],
    };
  },
};
