// Experiment 10, lan-areas: Tianyu Lan's 2022 patch that split the single swiotlb lock into areas
// (mainline since v5.19): its cover letter reports a confidential VM's network throughput going from
// about 20 to 34 Gb/s.
// The network job with one area (one io_tlb_area lock for every vCPU) against one area per vCPU, the
// kernel command line's swiotlb=<nslabs>,<nareas>: throughput and the area locks' contention.
import type { Spread } from '../sweep/figures.js';
import type { RunRecord } from '../sweep/run.js';
import type { RunReport } from '../vm/report.js';
import { cell, config, notOk, pct, repeated, spreadBy, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** The claimed gain: 34 / 20 Gb/s. */
export const CLAIMED_RATIO = 34 / 20;
/** Half the claimed gain: a throughput ratio at least this counts as reproducing it. */
export const ENOUGH_RATIO = 1 + (CLAIMED_RATIO - 1) / 2;
/** The single lock is a bottleneck worth removing when at least this share of its acquisitions found it held. */
export const BOTTLENECK_SHARE = 0.05;

/** jobs/net.fio's traffic (1500-byte packets received and sent), one clone per vCPU half each way, no start delay, iodepth 16. */
export function netJob(vcpus: number): string {
  const half = Math.max(1, vcpus >> 1);
  return `; lan-areas: jobs/net.fio's 1500-byte packets, ${half} receiver(s) and ${half} sender(s), iodepth 16
[global]
ioengine=net
bs=1500
iodepth=16
time_based

[receiver]
rw=read
numjobs=${half}

[sender]
rw=write
numjobs=${half}
`;
}

interface Cell {
  nareas: number;
  runs: number;
  not_ok: number;
  bw: Spread | null;
  /** Contended acquisitions over all acquisitions of every area lock, per run. */
  contended_share: Spread | null;
  contended: Spread | null;
  parked: Spread | null;
}

export interface LanAreasFigures {
  vcpus: number;
  nslabs: number;
  runtime: string;
  cells: Cell[];
}

const locks = (r: RunReport) => r.swiotlb.areas.reduce((s, a) => ({ acquired: s.acquired + a.acquired, contended: s.contended + a.contended, parked: s.parked + a.parked }), { acquired: 0, contended: 0, parked: 0 });

function cellOf(nareas: number, recs: RunRecord[]): Cell {
  return {
    nareas, runs: recs.length, not_ok: notOk(recs).length, bw: spreadFig(recs, 'bw'),
    contended_share: spreadBy(recs, (r) => { const l = locks(r); return l.acquired === 0 ? null : l.contended / l.acquired; }),
    contended: spreadBy(recs, (r) => locks(r).contended), parked: spreadBy(recs, (r) => locks(r).parked),
  };
}

export const lanAreas: Experiment<LanAreasFigures> = {
  name: 'lan-areas',
  number: 10,
  claim: {
    author: 'Tianyu Lan',
    source: 'cover letter of "[PATCH 0/2] swiotlb: Split up single swiotlb lock" (iommu and linux-hyperv lists, 2022; merged as commit 20347fca71a3, "swiotlb: split up the global swiotlb lock", Linux v5.19), not a seed thread',
    quote: 'The network test between traditional VM and Confidential VM. The throughput improves from ~20Gb/s to ~34Gb/s with this patchset.',
  },
  setup: 'jobs/net.fio\'s traffic (1500-byte packets through the emulated NIC, receivers and senders, one clone per vCPU, iodepth 16, no start delay) on 4 vCPUs and a 4096-slot pool booted with swiotlb=4096,1 (one area: every map and unmap takes the same io_tlb_area lock, as before the patch) against swiotlb=4096,4 (one area per vCPU, the kernel\'s default since the patch). Throughput is the groups\' bytes per second; contention is the share of area-lock acquisitions that found the lock held (the report\'s per-area acquired and contended counts).',
  cannot: 'The NIC is a model and the host has 2 cores, so at most two vCPU threads run at once and a lock holder is often descheduled: absolute Gb/s are not comparable and the claim is checked as a ratio, 34/20 = 1.7. A real guest\'s many vCPUs on many cores contend far more than these threads can.',
  rule: `Two parts: (a) per-vCPU areas remove the contention: the median contended share with one area per vCPU is at most half that with one area, which is above 0; (b) they buy the throughput: the median throughput with one area per vCPU is at least ${ENOUGH_RATIO.toFixed(2)}x that with one area (half the claimed 1.7x gain), and the single lock was a bottleneck (at least ${pct(BOTTLENECK_SHARE, 0)} of its acquisitions contended; below that a throughput difference is the host's noise, not the lock). Reproduced when both hold; partly when one does; refuted when neither does.`,
  forms: {
    full: 'both area counts, 2 s per run, 3 repeats each.',
    quick: 'both area counts, 300 ms per run, 1 run each.',
  },
  repeats: { full: 3, quick: 1 },
  async run(ctx) {
    const vcpus = 4;
    const nslabs = 4096;
    const runtime = ctx.quick ? '300ms' : '2s';
    const job = ctx.file('net-areas.fio', netJob(vcpus));
    const cells: Cell[] = [];
    for (const nareas of [1, vcpus]) {
      const recs = await ctx.run(repeated(config({ job, vcpus, mem: '4G', pool: { cmdline: `swiotlb=${nslabs},${nareas}` }, runtime }), ctx.repeat));
      cells.push(cellOf(nareas, recs));
    }
    return { vcpus, nslabs, runtime, cells };
  },
  judge(f) {
    const one = f.cells.find((c) => c.nareas === 1);
    const per = f.cells.find((c) => c.nareas === f.vcpus);
    const s1 = one?.contended_share?.median ?? null;
    const sN = per?.contended_share?.median ?? null;
    const b1 = one?.bw?.median ?? null;
    const bN = per?.bw?.median ?? null;
    const ratio = b1 !== null && bN !== null && b1 > 0 ? bN / b1 : null;
    const a = s1 !== null && sN !== null && s1 > 0 && sN <= s1 / 2;
    const b = ratio !== null && ratio >= ENOUGH_RATIO && s1 !== null && s1 >= BOTTLENECK_SHARE;
    const text = `contended share ${pct(s1, 2)} with one area, ${pct(sN, 2)} with ${f.vcpus}; throughput ${ratio === null ? '-' : `${ratio.toFixed(2)}x`} with ${f.vcpus} areas against one (claimed ${CLAIMED_RATIO.toFixed(1)}x)`;
    if (a && b) return { verdict: 'reproduced', why: `Splitting the lock removed the contention and raised throughput: ${text}.` };
    if (a) return { verdict: 'partly', why: `Per-vCPU areas removed the lock contention, but the single lock was not what limited throughput here (${s1 !== null && s1 < BOTTLENECK_SHARE ? `under ${pct(BOTTLENECK_SHARE, 0)} of acquisitions contended` : 'no gain of half the claim'}): ${text}.` };
    if (b) return { verdict: 'partly', why: `Throughput rose but the contention did not fall by half: ${text}.` };
    return { verdict: 'refuted', why: `Neither the contention nor the throughput changed as claimed: ${text}.` };
  },
  table(f) {
    return {
      head: ['areas', '>runs ok', '>throughput', '>lock acquisitions contended', '>contended', '>parked'],
      rows: f.cells.map((c) => [`${c.nareas} (swiotlb=${f.nslabs},${c.nareas})`, `${c.runs - c.not_ok}/${c.runs}`, cell('bytes/s', c.bw),
        c.contended_share === null ? '-' : `${pct(c.contended_share.median, 2)}`, cell('count', c.contended), cell('count', c.parked)]),
    };
  },
  chart(f) {
    const one = f.cells.find((c) => c.nareas === 1);
    const rel = (c: Cell) => (one?.bw?.median ? (c.bw?.median ?? 0) / one.bw.median : null);
    return {
      title: 'One area against one per vCPU: throughput relative to one area, and contended share of lock acquisitions (%)',
      kind: 'bars', xLabel: 'areas', yLabel: 'ratio / %', x: f.cells.map((c) => String(c.nareas)),
      series: [
        { label: 'throughput / one area\'s', values: f.cells.map(rel) },
        { label: 'claimed (34/20)', values: f.cells.map((c) => (c.nareas === 1 ? 1 : CLAIMED_RATIO)) },
        { label: 'contended %', values: f.cells.map((c) => (c.contended_share === null ? null : c.contended_share.median * 100)) },
      ],
    };
  },
};
