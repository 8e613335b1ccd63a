// Experiment 3, murphy-polling: Robin Murphy's objection to the throttling RFC (seed 000), that a
// thread which must poll for its completions and is parked on the throttle cannot reap the completions
// that would free the pool. The driver model is src/vm/polling.ts: fio's hipri on NVMe poll queues.
import type { RunRecord } from '../sweep/run.js';
import type { Spread } from '../sweep/figures.js';
import { spreadOf } from '../sweep/figures.js';
import { runErrors } from '../vm/report.js';
import { parsePolledQueuesText } from '../vm/polling.js';
import { cell, config, notOk, repeated, reports, shippedJob, spreadBy, spreadFig } from './measure.js';
import type { Experiment } from './types.js';

export const MODES = ['polled-throttle', 'interrupt-throttle', 'polled-static'] as const;
export type Mode = (typeof MODES)[number];

export interface ModeFigures {
  mode: Mode;
  /** How completions are reaped (hipri on poll queues, or interrupts), and the policy. */
  completion: 'polled' | 'interrupt';
  policy: 'throttle' | 'static';
  runs: number;
  ok: number;
  stalled: number;
  /** Runs that ended neither ok nor stalled (a crash). */
  other_not_ok: number;
  /**
   * Stalled runs whose report names at least one poll queue with completions posted and not reaped
   * whose vCPU was parked in the throttle wait: Murphy's mechanism, not some other stall.
   */
  stalls_with_parked_poller: number;
  /** Over the stalled runs: completions posted and not reaped, and vCPUs parked in the throttle wait, as the stall report names them. */
  unreaped: Spread | null;
  parked_vcpus: Spread | null;
  /** Over the ok runs. */
  ios: Spread | null;
  io_errors: Spread | null;
  map_failures: Spread | null;
  reaped_by_polling: Spread | null;
  reaped_in_throttle_wait: Spread | null;
  /** Runs (ok ones) in which some completion was taken during a throttle wait. */
  runs_reaping_in_wait: number;
}

export interface MurphyPollingFigures {
  job: string;
  vcpus: number;
  pool: string;
  runtime: string;
  throttle_stall_timeout: string;
  modes: ModeFigures[];
}

function modeFigures(mode: Mode, recs: RunRecord[]): ModeFigures {
  const reps = reports(recs);
  const stalledRecs = recs.filter((r) => r.status === 'stalled');
  const queues = stalledRecs.map((r) => parsePolledQueuesText(r.reason ?? ''));
  const sumStorage = (f: (j: { reaped_by_polling: number; reaped_in_throttle_wait: number }) => number) =>
    spreadBy(recs, (r) => r.polling.jobs.reduce((s, j) => s + f(j), 0));
  return {
    mode, completion: mode.startsWith('polled') ? 'polled' : 'interrupt', policy: mode.endsWith('throttle') ? 'throttle' : 'static',
    runs: recs.length, ok: reps.length, stalled: stalledRecs.length, other_not_ok: notOk(recs).length - stalledRecs.length,
    stalls_with_parked_poller: queues.filter((qs) => qs.some((q) => q.parked_in_throttle_wait && q.posted_unreaped > 0)).length,
    unreaped: spreadOf(queues.map((qs) => qs.reduce((s, q) => s + q.posted_unreaped, 0))),
    parked_vcpus: spreadOf(queues.map((qs) => qs.filter((q) => q.parked_in_throttle_wait).length)),
    ios: spreadBy(recs, (r) => r.jobs.reduce((n, j) => n + (j.read?.ios ?? 0) + (j.write?.ios ?? 0), 0)), io_errors: spreadBy(recs, (r) => runErrors(r).io_errors), map_failures: spreadFig(recs, 'map_failures'),
    reaped_by_polling: sumStorage((j) => j.reaped_by_polling), reaped_in_throttle_wait: sumStorage((j) => j.reaped_in_throttle_wait),
    runs_reaping_in_wait: reps.filter((r) => r.polling.jobs.some((j) => j.reaped_in_throttle_wait > 0)).length,
  };
}

const byMode = (f: MurphyPollingFigures, m: Mode): ModeFigures => f.modes.find((x) => x.mode === m)!;

export const murphyPolling: Experiment<MurphyPollingFigures> = {
  name: 'murphy-polling',
  number: 3,
  claim: {
    author: 'Robin Murphy',
    source: 'seed 000_6d5dc4262ceed328.txt (reply in the "[RFC 0/7] Introduce swiotlb throttling" thread, Aug 2024)',
    quote: 'At worst, if a thread is blocked from polling for completion and releasing a bunch of mappings of already-finished descriptors because it\'s stuck on an unfair lock trying to get one last one submitted, then throttling has actively harmed the situation.',
  },
  setup: 'jobs/hipri-polled.fio (io_uring with hipri: random 64 KiB reads, iodepth 16, one clone per vCPU, so each vCPU wants 512 slots at once) on a pool that holds a fraction of it, three ways: polled completions (--cmdline nvme.poll_queues=N: the clones\' I/O on NVMe poll queues, reaped only by their own vCPU\'s poll loop) under the throttling RFC; interrupt-driven completions (no poll queues: hipri completes by interrupt, taken even while the vCPU\'s map sleeps on throttle_sem) under the RFC; and polled completions on the static pool (no throttling). The throttle watchdog (--throttle-stall-timeout) ends a run whose waiters make no progress, naming the poll queues and their parked vCPUs.',
  cannot: 'The driver is a model of NVMe\'s poll queues: one per vCPU (Linux shares a poll queue between CPUs when nvme.poll_queues is below their number, and a task polling it reaps its neighbours\' completions too, which could only make a stall rarer), and the poll loop is the vCPU\'s own loop (io_uring\'s iopoll), not busy-polling networking, which the emulated NIC does not do. The kernel waiter sleeps with no timeout: a stall there is a hang; here the watchdog ends it. Whether a real NVMe driver with the RFC\'s MAY_BLOCK would take this path depends on its submission context (BLK_MQ_F_BLOCKING with io_uring polled I/O), which the RFC did not discuss.',
  rule: 'Three parts: (a) with polled completions under the throttle every run stalls, and each stall names a poll queue with completions posted and not reaped whose vCPU is parked in the throttle wait; (b) with interrupt-driven completions under the throttle every run ends ok with no I/O error, and completions were taken during throttle waits in every run (the waits happened, and interrupts served them); (c) with polled completions on the static pool no run stalls (the stall is the throttle\'s doing, not polling\'s). Reproduced when all three hold; refuted when no polled throttled run stalls for that reason; partly otherwise.',
  forms: {
    full: '4 vCPUs (nvme.poll_queues=4), --mem 4G, a 2 MiB pool (1024 slots, high_throttle 716), 3 s per run, throttle watchdog 1 s, 3 repeats of each of the three.',
    quick: '2 vCPUs (nvme.poll_queues=2), --mem 2G, a 1 MiB pool (512 slots, high_throttle 358), 1 s per run, throttle watchdog 500 ms, 1 run of each.',
  },
  repeats: { full: 3, quick: 1 },
  async run(ctx) {
    const vcpus = ctx.quick ? 2 : 4;
    const pool = ctx.quick ? '1M' : '2M';
    const runtime = ctx.quick ? '1s' : '3s';
    const watchdog = ctx.quick ? '500ms' : '1s';
    const base = config({ job: shippedJob('hipri-polled.fio'), vcpus, mem: ctx.quick ? '2G' : '4G', pool: { swiotlb: pool }, runtime });
    const polled = { cmdline: `nvme.poll_queues=${vcpus}` };
    const knobs: Record<Mode, { policy: 'throttle' | 'static'; knobs: Record<string, string> }> = {
      'polled-throttle': { policy: 'throttle', knobs: { ...polled, 'throttle-stall-timeout': watchdog } },
      'interrupt-throttle': { policy: 'throttle', knobs: { 'throttle-stall-timeout': watchdog } },
      'polled-static': { policy: 'static', knobs: polled },
    };
    const configs = MODES.flatMap((m) => repeated({ ...base, ...knobs[m] }, ctx.repeat).map((c) => ({ m, c })));
    const recs = await ctx.run(configs.map((x) => x.c));
    return {
      job: 'jobs/hipri-polled.fio (numjobs = vCPUs)', vcpus, pool, runtime, throttle_stall_timeout: watchdog,
      modes: MODES.map((m) => modeFigures(m, recs.filter((_, i) => configs[i]!.m === m))),
    };
  },
  judge(f) {
    const p = byMode(f, 'polled-throttle');
    const i = byMode(f, 'interrupt-throttle');
    const s = byMode(f, 'polled-static');
    const a = p.runs > 0 && p.stalled === p.runs && p.stalls_with_parked_poller === p.runs;
    const b = i.runs > 0 && i.ok === i.runs && (i.io_errors?.max ?? 0) === 0 && i.runs_reaping_in_wait === i.runs;
    const c = s.runs > 0 && s.stalled === 0 && s.other_not_ok === 0;
    const pt = `polled under the throttle: ${p.stalled} of ${p.runs} runs stalled, ${p.stalls_with_parked_poller} naming a parked poller (median ${p.unreaped?.median ?? '-'} completions posted and not reaped, ${p.parked_vcpus?.median ?? '-'} of ${f.vcpus} vCPUs parked)`;
    const it = `interrupt-driven under the throttle: ${i.ok} of ${i.runs} ok, I/O errors at most ${i.io_errors?.max ?? '-'}, completions taken during throttle waits in ${i.runs_reaping_in_wait} (median ${i.reaped_in_throttle_wait?.median ?? '-'})`;
    const st = `polled on the static pool: ${s.stalled} of ${s.runs} stalled (map failures median ${s.map_failures?.median ?? '-'})`;
    if (a && b && c) return { verdict: 'reproduced', why: `${pt}; ${it}; ${st}.` };
    if (p.stalls_with_parked_poller === 0) return { verdict: 'refuted', why: `No polled throttled run stalled with its poller parked: ${pt}; ${it}; ${st}.` };
    return { verdict: 'partly', why: `Not every part held: ${pt}; ${it}; ${st}.` };
  },
  table(f) {
    return {
      head: ['completions, policy', 'pool, vCPUs, runtime', '>runs ok', '>stalled', '>unreaped at stall', '>parked vCPUs', '>reads', '>I/O errors', '>map failures', '>reaped by polling', '>reaped in throttle wait'],
      rows: f.modes.map((m) => [
        `${m.completion}, ${m.policy}`, `${f.pool}, ${f.vcpus} vCPUs, ${f.runtime}`, `${m.ok}/${m.runs}`, `${m.stalled}/${m.runs}`,
        cell('count', m.unreaped), cell('count', m.parked_vcpus), cell('count', m.ios), cell('count', m.io_errors), cell('count', m.map_failures),
        cell('count', m.reaped_by_polling), cell('count', m.reaped_in_throttle_wait),
      ]),
    };
  },
  chart(f) {
    return {
      title: 'Polled against interrupt-driven completions under the throttle: runs that stalled',
      kind: 'bars', xLabel: 'completions, policy', yLabel: 'runs',
      x: f.modes.map((m) => `${m.completion}, ${m.policy}`),
      series: [
        { label: 'runs ok', values: f.modes.map((m) => m.ok) },
        { label: 'runs stalled', values: f.modes.map((m) => m.stalled) },
        { label: 'stalls with a parked poller', values: f.modes.map((m) => m.stalls_with_parked_poller) },
      ],
    };
  },
};
