// Experiment 5, tesarik-spread: Petr Tesarik (seed 001) found that two consecutive fio runs differed by
// as much as 10%, which made his swiotlb measurements invalid. Here: the spread of the same seeded run
// repeated, for throughput, latency, map failures and the high-water mark, against his 10%.
//
// What decides is what the seed decides: the counts of a load whose pool holds every I/O it has in
// flight (its map failures and high-water mark do not depend on when anything ran). Throughput and
// latency on the wall clock, and the counts of a load that overruns its pool (how many maps fail
// depends on how many I/Os are in flight when it runs out), are the host's scheduling: their spread is
// shown, it does not decide (on one quiet host single quick runs measured 10% to 87%).
import type { Spread } from '../sweep/figures.js';
import { cell, config, figure, notOk, pct, repeated, shippedJob, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** His bound: runs that differ by at most this much agree with "as much as 10%". */
export const TESARIK_BOUND = 0.1;

/** The figures whose spread is measured (the sweep's figures by name). */
export const SPREAD_FIGURES = ['iops', 'clat_p50', 'clat_p99', 'map_failures', 'hiwater'] as const;

interface Load {
  label: string;
  /** The figures the seed decides for this load (what the verdict reads); the others are the host's. */
  decided: Array<(typeof SPREAD_FIGURES)[number]>;
  runs: number;
  not_ok: number;
  figures: Record<(typeof SPREAD_FIGURES)[number], Spread | null>;
}

export interface TesarikSpreadFigures {
  runtime: string;
  loads: Load[];
}

/** The figures the seed decides for a load whose pool holds everything it has in flight. */
export const SEEDED = ['map_failures', 'hiwater'] as const;

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
  setup: 'The same run repeated with the same seed (so every random choice of the workload is the same, and what differs is the host\'s scheduling of the vCPU and device threads): jobs/randrw-4k.fio (4 KiB random I/O, at most 128 slots in flight in an 8192-slot pool, so no map can fail and the high-water mark is the in-flight maximum) and jobs/heavy.fio (a pool it overruns, so map failures happen), 2 vCPUs, --mem 4G, static policy. For each figure the spread is (max-min)/median over the repeats, the sweep\'s spread, which for two runs is their difference over their mean. Two kinds of figures: those the seed decides (randrw-4k\'s map failures and high-water mark: what the verdict reads), and those the host\'s scheduling decides (IOPS and latency on the wall clock, and heavy\'s counts: how many of its maps fail depends on how many I/Os are in flight when the pool runs out), shown with their spread, not deciding.',
  cannot: 'His runs were on a Raspberry Pi 4 with a real USB disk and filesystem; the emulator\'s timing noise is its host\'s (here a shared, loaded machine), not a device\'s, and no rule can bound it: between single quick runs on one quiet host the timed figures\' spread went from 10% to 87%, so whether they fall within his 10% is the host\'s, not the emulator\'s, and they do not decide. A spread over N repeats is at least the largest difference between two consecutive ones, so N > 2 can only make ours look larger.',
  rule: `A figure agrees with his bound when its spread over the repeats is at most ${pct(TESARIK_BOUND, 0)} (a figure that is 0 in every repeat has spread 0). Only the figures the seed decides are read: partly when every one of them agrees (what the emulator decides repeats; its timings are the host's, so it cannot claim to repeat better than his 10% in every figure, and the verdict is never "reproduced"); refuted when one does not (a seeded run's own counts differ between repeats). The timed figures and an overrun pool's counts are shown with their spread and do not decide.`,
  forms: {
    full: 'both loads, 8 repeats each, 2 s per run.',
    quick: 'randrw-4k only, 3 repeats, 300 ms per run.',
  },
  repeats: { full: 8, quick: 3 },
  async run(ctx) {
    const runtime = ctx.quick ? '300ms' : '2s';
    const loads: Load[] = [];
    // randrw-4k has 128 slots in flight at most (4 clones x iodepth 16 x 4 KiB, 2 slots each) in an 8192-slot pool: no map can fail, and the high-water mark is the in-flight maximum.
    const all = [['randrw-4k, 16M pool', 'randrw-4k.fio', '16M', SEEDED], ['heavy, 4M pool', 'heavy.fio', '4M', []]] as const;
    for (const [label, job, pool, decided] of ctx.quick ? all.slice(0, 1) : all) {
      const recs = await ctx.run(repeated(config({ job: shippedJob(job), vcpus: 2, mem: '4G', pool: { swiotlb: pool }, runtime }), ctx.repeat));
      loads.push({ label, decided: [...decided], runs: recs.length, not_ok: notOk(recs).length, figures: Object.fromEntries(SPREAD_FIGURES.map((n) => [n, spreadFig(recs, n)])) as Load['figures'] });
    }
    return { runtime, loads };
  },
  judge(f) {
    const spreads = (decided: boolean) => f.loads.flatMap((l) => SPREAD_FIGURES.filter((n) => l.decided.includes(n) === decided).map((n) => ({ load: l.label, name: n, s: spreadValue(l.figures[n]) })).filter((x) => x.s !== null));
    const seeded = spreads(true);
    const host = spreads(false);
    const show = (xs: typeof seeded) => xs.map((x) => `${x.name} ${Number.isFinite(x.s!) ? pct(x.s!, 0) : '(median 0, not all 0)'} (${x.load})`).join(', ') || 'none';
    const beyond = seeded.filter((x) => x.s! > TESARIK_BOUND);
    const text = `decided by the seed: ${show(seeded)}; the host's (not deciding): ${show(host)}`;
    if (seeded.length > 0 && beyond.length === 0) return { verdict: 'partly', why: `What the seed decides repeats within his 10%, the timings are the host's and the emulator cannot bound them: ${text}.` };
    if (seeded.length === 0) return { verdict: 'refuted', why: `No figure the seed decides was measured: ${text}.` };
    return { verdict: 'refuted', why: `Even figures the seed decides differ between repeats by more than his 10%: ${text}.` };
  },
  table(f) {
    return {
      head: ['load', '>runs ok', ...SPREAD_FIGURES.map((n) => `>${figure(n).label}`)],
      rows: f.loads.map((l) => [l.label, `${l.runs - l.not_ok}/${l.runs}`, ...SPREAD_FIGURES.map((n) => `${cell(figure(n).unit, l.figures[n])}${l.decided.includes(n) ? ' (seed)' : ''}`)]),
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
