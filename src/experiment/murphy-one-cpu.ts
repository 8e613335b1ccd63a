// Experiment 2, murphy-one-cpu: Robin Murphy's objection to the throttling RFC (seed 000), that a
// single CPU which queues enough requests at once fills the pool whatever the throttle does. Two ways
// one vCPU maps many buffers before it unmaps any: a deep queue of large storage requests (each a
// scatter-gather list of 256 KiB segments, MAY_BLOCK, throttled on its first entry only, as the RFC
// does), and non-blocking NIC receive buffers (never throttled).
import type { Spread } from '../sweep/figures.js';
import type { RunRecord } from '../sweep/run.js';
import { cell, config, notOk, pct, repeated, reports, spreadBy, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

/** One vCPU, one clone: 1 MiB random writes (4 segments of 256 KiB) at iodepth 64: 64 MiB wanted at once. */
export const STORAGE_JOB = `; murphy-one-cpu: one CPU queueing large requests (MAY_BLOCK storage)
[one-cpu-storage]
ioengine=libaio
direct=1
rw=randwrite
bs=1m
iodepth=64
numjobs=1
size=64M
time_based
`;

/** One vCPU, one clone: 64 KiB NIC receive buffers at iodepth 128: 8 MiB wanted at once, mapped without blocking. */
export const NIC_JOB = `; murphy-one-cpu: one CPU posting non-blocking NIC receive buffers
[one-cpu-nic]
ioengine=net
rw=read
bs=64k
iodepth=128
numjobs=1
time_based
`;

export const VARIANTS = ['storage', 'nic'] as const;
export type Variant = (typeof VARIANTS)[number];

interface Cell {
  variant: Variant;
  policy: 'throttle' | 'static';
  runs: number;
  not_ok: number;
  /** Ok runs in which the pool ran out: a map failed for want of free slots ("swiotlb buffer is full"). */
  runs_exhausted: number;
  map_failures: Spread | null;
  /** I/O errors (storage) or dropped packets (NIC): what the failures cost the job. */
  lost: Spread | null;
  hiwater: Spread | null;
  throttled: Spread | null;
  nslabs: number;
}

export interface MurphyOneCpuFigures {
  pool: string;
  runtime: string;
  cells: Cell[];
}

function cellOf(variant: Variant, policy: 'throttle' | 'static', recs: RunRecord[]): Cell {
  const reps = reports(recs);
  return {
    variant, policy, runs: recs.length, not_ok: notOk(recs).length,
    runs_exhausted: reps.filter((r) => r.swiotlb.map_failures_by_cause.full > 0).length,
    map_failures: spreadFig(recs, 'map_failures'), lost: spreadFig(recs, variant === 'storage' ? 'io_errors' : 'packets_dropped'),
    hiwater: spreadFig(recs, 'hiwater'), throttled: spreadBy(recs, (r) => (r.throttle.enabled ? r.throttle.throttled : null)),
    nslabs: reps[0]?.swiotlb.io_tlb_nslabs ?? 0,
  };
}

export const murphyOneCpu: Experiment<MurphyOneCpuFigures> = {
  name: 'murphy-one-cpu',
  number: 2,
  claim: {
    author: 'Robin Murphy',
    source: 'seed 000_6d5dc4262ceed328.txt (review of "[RFC 0/7] Introduce swiotlb throttling", Aug 2024)',
    quote: 'If a single CPU is capable of queueing enough requests at once to fill the SWIOTLB, this is going to do absolutely nothing',
  },
  setup: 'One vCPU and a 4 MiB pool (2048 slots), --policy throttle (the RFC, high_throttle 70%): (storage) one fio clone of 1 MiB random writes at iodepth 64, each request a scatter-gather list of four 256 KiB segments mapped with DMA_ATTR_MAY_BLOCK and throttled on its first entry only, 64 MiB wanted at once; (nic) one clone of 64 KiB NIC receive buffers at iodepth 128, mapped without MAY_BLOCK (the NIC never blocks), 8 MiB wanted at once. The full form runs static alongside, for what throttling changes.',
  cannot: 'The drivers are models: a real NVMe driver maps a request\'s SG list as the emulator does (entry 0 throttled, the rest not) but its queue depth and merging differ, and a real NIC driver refills its ring at its own pace; "absolutely nothing" is checked as "the pool still runs out", not as equal failure counts.',
  rule: 'A variant exhausts the pool when every ok throttled run of it has a map failure for want of free slots ("swiotlb buffer is full"), and no throttled run fails otherwise. Reproduced when both variants exhaust it under throttling; partly when one does; refuted when neither does.',
  forms: {
    full: 'both variants, throttle and static, 1 s per run, 3 repeats each.',
    quick: 'both variants under throttle only, 500 ms per run, 1 run each.',
  },
  repeats: { full: 3, quick: 1 },
  async run(ctx) {
    const pool = '4M';
    const runtime = ctx.quick ? '500ms' : '1s';
    const policies = ctx.quick ? (['throttle'] as const) : (['throttle', 'static'] as const);
    const jobs: Record<Variant, string> = { storage: ctx.file('one-cpu-storage.fio', STORAGE_JOB), nic: ctx.file('one-cpu-nic.fio', NIC_JOB) };
    const cells: Cell[] = [];
    for (const variant of VARIANTS) {
      for (const policy of policies) {
        const recs = await ctx.run(repeated(config({ job: jobs[variant], vcpus: 1, mem: '4G', pool: { swiotlb: pool }, policy, runtime }), ctx.repeat));
        cells.push(cellOf(variant, policy, recs));
      }
    }
    return { pool, runtime, cells };
  },
  judge(f) {
    const exhausted = (v: Variant): { yes: boolean; text: string } => {
      const c = f.cells.find((x) => x.variant === v && x.policy === 'throttle');
      if (c === undefined) return { yes: false, text: `${v}: not run` };
      const ok = c.runs - c.not_ok;
      const yes = c.not_ok === 0 && ok > 0 && c.runs_exhausted === ok;
      return { yes, text: `${v}: ${c.runs_exhausted} of ${c.runs} throttled runs ran out of slots (map failures ${c.map_failures?.median ?? '-'}, hiwater ${c.hiwater?.max ?? '-'} of ${c.nslabs})${c.not_ok > 0 ? `, ${c.not_ok} not ok` : ''}` };
    };
    const s = exhausted('storage');
    const n = exhausted('nic');
    if (s.yes && n.yes) return { verdict: 'reproduced', why: `One vCPU filled the pool through the throttle both ways: ${s.text}; ${n.text}.` };
    if (s.yes || n.yes) return { verdict: 'partly', why: `Only ${s.yes ? 'the deep queue of large MAY_BLOCK requests' : 'the non-blocking NIC maps'} filled the pool through the throttle: ${s.text}; ${n.text}.` };
    return { verdict: 'refuted', why: `Throttling kept one vCPU from filling the pool: ${s.text}; ${n.text}.` };
  },
  table(f) {
    return {
      head: ['variant', 'policy', '>runs ok', '>runs out of slots', '>map failures', '>I/O errors / drops', '>hiwater', '>hiwater/nslabs', '>throttled'],
      rows: f.cells.map((c) => [
        c.variant, c.policy, `${c.runs - c.not_ok}/${c.runs}`, String(c.runs_exhausted), cell('count', c.map_failures), cell('count', c.lost),
        cell('slots', c.hiwater), c.hiwater === null || c.nslabs === 0 ? '-' : pct(c.hiwater.max / c.nslabs), cell('count', c.throttled),
      ]),
    };
  },
  chart(f) {
    const at = (v: Variant, p: 'throttle' | 'static') => f.cells.find((c) => c.variant === v && c.policy === p);
    const policies = [...new Set(f.cells.map((c) => c.policy))];
    return {
      title: 'One vCPU: map failures by variant and policy (median)',
      kind: 'bars', xLabel: 'variant', yLabel: 'map failures', x: [...VARIANTS],
      series: policies.map((p) => ({ label: p, values: VARIANTS.map((v) => at(v, p)?.map_failures?.median ?? null) })),
    };
  },
};
