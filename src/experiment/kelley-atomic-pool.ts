// Experiment 7, kelley-atomic-pool: Michael Kelley (seed 000 thread) on dynamic swiotlb for maps that
// cannot block: their transient pools come from the atomic DMA pool, "which typically isn't that large
// and could itself become exhausted". A burst of non-blocking NIC maps against a full 1 MiB pool with
// dynamic swiotlb on, with the kernel's default atomic pool at three guest sizes.
//
// What decides is counted, not raced: the burst mapped on one thread against the guest's pools as the
// VM boots them (bootSwiotlb, the emulator's allocator and atomic pool), at the instant the burst
// arrives, before the atomic pool's kworker or the growth worker has run: how many transient pools
// the atomic pool holds, how many maps it refuses. The same burst with the kworker's refill run
// between every two maps (the best a kworker can do) counts the refills the burst needs. The VM runs,
// where the kworker is a thread the host schedules against the vCPUs, show the race and do not decide.
import type { Spread } from '../sweep/figures.js';
import type { RunRecord } from '../sweep/run.js';
import { formatBytes } from '../util/units.js';
import { cell, config, notOk, repeated, reports, shippedJob, spreadBy, spreadFig } from './measure.js';
import { readFileSync } from 'node:fs';
import { overrideJob } from '../sweep/size.js';
import { parseVmOptions } from '../vm/options.js';
import { bootSwiotlb } from '../vm/vm.js';
import { parseFioJobFile } from '../workload/fio.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { GuestMemory } from '../memory/guest.js';
import { DmaDevice } from '../dma/device.js';
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR } from '../swiotlb/constants.js';
import { AP_WORK_PENDING } from '../memory/atomic-pool.js';
import type { Experiment } from './types.js';

/** The burst's job: jobs/nic-burst.fio at iodepth 64, 8 clones of 64 KiB receive buffers: 512 maps, 32 MiB at once. */
const BURST_IODEPTH = 64;

/** One guest's burst, counted (no thread but the mapping one: exact and the same on any host). */
export interface BurstCount {
  mem: string;
  /** atomic_pool_size (each pool's boot size and its expansion threshold), bytes. */
  atomic_pool_size: number;
  /** Bytes of the atomic pools at boot (dma + dma32 + kernel). */
  atomic_boot_bytes: number;
  /** Non-blocking maps in the burst (clones x iodepth) and each one's size. */
  maps: number;
  map_bytes: number;
  /** Maps the swiotlb pool served before it was full. */
  from_swiotlb: number;
  /** Transient pools the atomic pool gave before its first refill: what it holds. */
  transient_held: number;
  /** Maps refused for want of atomic-pool memory with no refill. */
  refused: number;
  /** The transient pool whose allocation queued the kworker's first refill (1: the first). */
  refill_queued_at: number;
  /** Kworker runs the burst needed when each ran between two maps, and the maps still refused then. */
  refills_needed: number;
  refused_with_refills: number;
}

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
  /** Runs of atomic_pool_work (the kworker's refills; each may add a chunk to several pools). */
  work_runs: Spread | null;
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
  /** The counted bursts, one per guest: what decides. */
  counts: BurstCount[];
  runtime: string;
  /** The VM runs (the race on this host): reported, not deciding. */
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
    work_runs: spreadBy(recs, (r) => r.guest_memory.atomic_pool.work_runs),
    atomic_size_end: spreadBy(recs, (r) => r.guest_memory.atomic_pool.size), dynamic_pools: spreadBy(recs, (r) => r.dynamic.pools?.dynamic.count ?? null),
    drops: spreadFig(recs, 'packets_dropped'),
    first_failure_s: med(okRecs.flatMap((r) => (r.first_event_s?.map_failure !== undefined ? [r.first_event_s.map_failure] : []))),
  };
}

/**
 * The burst on one thread against the pools of a `mem` guest as the VM boots them (--policy dynamic,
 * a 1 MiB default pool): every map of `jobText`'s clones x iodepth, none unmapped. With `refill`, the
 * atomic pool's work (atomic_pool_work_fn) runs after every map that left it pending: a kworker that
 * never loses the race. The growth worker never runs (its work stays pending): the pools at the burst's instant.
 */
function burst(mem: string, vcpus: number, jobText: string, refill: boolean) {
  const jobs = parseFioJobFile(jobText, 'nic-burst-64.fio').jobs;
  const job = jobs[0]!;
  const bs = job.bs.read;
  if (bs.kind !== 'fixed') throw new Error('kelley-atomic-pool: the burst\'s receive buffers have one size');
  const boot = bootSwiotlb(parseVmOptions(['--vcpus', String(vcpus), '--mem', mem, '--swiotlb', '1M', '--policy', 'dynamic', '--cmdline', '', '--decrypt-latency', '0', '--decrypted-arena', '256M']), jobs);
  const ap = boot.guest.atomicPool;
  const orig = 0x1_0000_0000;
  const m = IoTlbMem.attach(boot.mem.shared(), { memory: { phys: boot.guest.phys, arena: boot.guest.arena, atomicPool: ap }, guest: new GuestMemory(new SharedArrayBuffer(bs.bytes), orig) });
  const dev = new DmaDevice('eth0');
  const maps = job.numjobs * job.iodepth;
  let fromSwiotlb = 0;
  let transient = 0;
  let refused = 0;
  let queuedAt = 0;
  let refills = 0;
  const boot0 = ap.stats();
  for (let i = 0; i < maps; i++) {
    const made = m.dyn!.stats().transient_created;
    if (m.tblMapSingle(dev, orig, bs.bytes, 0, DMA_FROM_DEVICE, 0) === DMA_MAPPING_ERROR) refused++;
    else if (m.dyn!.stats().transient_created > made) transient++;
    else fromSwiotlb++;
    if (queuedAt === 0 && ap.stats().work_queued > 0) queuedAt = transient;
    if (refill && Atomics.load(ap.i32, AP_WORK_PENDING) === 1) {
      Atomics.store(ap.i32, AP_WORK_PENDING, 0); // taken off the queue as the work loop does
      ap.workFn(0);
      refills++;
    }
  }
  return { boot0, maps, mapBytes: bs.bytes, fromSwiotlb, transient, refused, queuedAt, refills };
}

/** The counted bursts of one guest: with no refill, and with a refill between every two maps. */
export function countBurst(mem: string, vcpus: number, jobText: string): BurstCount {
  const none = burst(mem, vcpus, jobText, false);
  const best = burst(mem, vcpus, jobText, true);
  return {
    mem, atomic_pool_size: none.boot0.atomic_pool_size, atomic_boot_bytes: none.boot0.size, maps: none.maps, map_bytes: none.mapBytes,
    from_swiotlb: none.fromSwiotlb, transient_held: none.transient, refused: none.refused, refill_queued_at: none.queuedAt,
    refills_needed: best.refills, refused_with_refills: best.refused,
  };
}

const exhausted = (c: BurstCount): boolean => c.refused > 0;

export const kelleyAtomicPool: Experiment<AtomicPoolFigures> = {
  name: 'kelley-atomic-pool',
  number: 7,
  claim: {
    author: 'Michael Kelley',
    source: 'seed 000_6d5dc4262ceed328.txt (reply in the "[RFC 0/7] Introduce swiotlb throttling" thread, Aug 2024)',
    quote: 'The transient buffer memory comes from the atomic pool, which typically isn\'t that large and could itself become exhausted.',
  },
  setup: 'jobs/nic-burst.fio (64 KiB NIC receive buffers, 8 clones) at iodepth 64: a burst of 512 non-blocking maps, 32 MiB wanted at once, against a 1 MiB default pool (16 of them fill it), --policy dynamic (mainline CONFIG_SWIOTLB_DYNAMIC), 2 vCPUs. Every map that finds the pools full takes a transient pool from the atomic DMA pool (GFP_NOWAIT, __GFP_NOWARN); the atomic pools are the kernel\'s default for the guest (dma_atomic_pool_init: 128 KiB per GiB of RAM, at least 128 KiB, at most 4 MiB, per pool, one per zone the guest has), on guests of 1, 4 and 16 GiB. Counted (what decides, the same on any host): the burst mapped on one thread against the pools as the VM boots them, at the instant it arrives, before the atomic pool\'s kworker (which doubles a pool that runs low) or the growth worker (which adds 1 MiB pools) has run: the transient pools the atomic pool holds, the maps it refuses, which transient pool queued the first refill; then the same burst with the kworker\'s refill run between every two maps, the best a kworker can do, for the refills the burst needs. VM runs (the race, reported, not deciding): the burst in the VM, where the kworker and the growth worker are threads the host schedules against the vCPUs; "when" is the run\'s first map failure, in seconds since it started.',
  cannot: 'Whether a refill lands in time is a race between the burst and the kworker: in a kernel the kworker\'s refill is a page allocation and set_memory_decrypted of a chunk as large as the pool (a hypercall), against maps of a few microseconds each from a NIC\'s refill loop; here set_memory_decrypted costs nothing (--decrypt-latency 0: no measured figure was found to cite) and the threads are the host\'s, so the VM runs show one host\'s race, and the counts say how much the kworker must do within the burst, not whether a kernel\'s does. The NIC is a model that posts receive buffers as fast as the vCPU maps them.',
  rule: 'Counted, at each guest size: the default atomic pool runs out under the burst when the burst\'s maps beyond the full swiotlb pool outnumber the transient pools it holds before its kworker\'s first refill (the counted burst refuses a map). Reproduced when it runs out at every guest size; partly when at some; refuted when at none. The VM runs do not decide: they are the host\'s race.',
  forms: {
    full: 'the counted bursts at the three guest sizes; VM runs at the three guest sizes, 1 s per run, 3 repeats each.',
    quick: 'the counted bursts at the three guest sizes (the same counts as the full form); one VM run of 500 ms on the 1 GiB guest.',
  },
  repeats: { full: 3, quick: 1 },
  async run(ctx) {
    const vcpus = 2;
    const jobText = overrideJob(readFileSync(shippedJob('nic-burst.fio'), 'utf8'), { iodepth: BURST_IODEPTH });
    ctx.progress('counted bursts');
    const counts = GUESTS.map((mem) => countBurst(mem, vcpus, jobText));
    const runtime = ctx.quick ? '500ms' : '1s';
    const job = ctx.file('nic-burst-64.fio', jobText);
    const cells: Cell[] = [];
    for (const mem of ctx.quick ? GUESTS.slice(0, 1) : GUESTS) {
      const base = config({ job, vcpus, mem, pool: { swiotlb: '1M' }, policy: 'dynamic', runtime });
      cells.push(cellOf(`${mem} guest`, await ctx.run(repeated(base, ctx.repeat))));
    }
    return { vcpus, counts, runtime, cells };
  },
  judge(f) {
    const text = (c: BurstCount) => `${c.mem} guest (${formatBytes(c.atomic_boot_bytes)} of atomic pools): ${c.maps - c.from_swiotlb} maps beyond the swiotlb pool, ${c.transient_held} transient pools held before a refill, ${c.refused} refused${c.refills_needed > 0 ? `; served only if the kworker refills ${c.refills_needed} times within the burst` : ''}`;
    const race = f.cells.map((c) => `${c.atomic} ${c.runs_exhausted} of ${c.runs - c.not_ok} runs refused transient pools`).join(', ');
    const vm = f.cells.length === 0 ? '' : ` In the VM runs, the host's race (not deciding): ${race}.`;
    const out = f.counts.filter(exhausted);
    const all = f.counts.map(text).join('; ');
    if (f.counts.length > 0 && out.length === f.counts.length) return { verdict: 'reproduced', why: `At every guest size the burst wants more transient pools than the default atomic pool holds before its kworker can refill it: ${all}.${vm}` };
    if (out.length > 0) return { verdict: 'partly', why: `The burst outruns the default atomic pool only in some guests (${out.map((c) => `${c.mem} guest`).join(', ')}): ${all}.${vm}` };
    return { verdict: 'refuted', why: `The default atomic pool holds the whole burst at every guest size, with no refill: ${all}.${vm}` };
  },
  table(f) {
    const counted = f.counts.map((c) => [
      `counted: ${c.mem} guest (${formatBytes(c.atomic_pool_size)} per pool)`, formatBytes(c.atomic_boot_bytes), String(c.maps - c.from_swiotlb), String(c.transient_held), String(c.refused),
      `${c.refills_needed}${c.refused_with_refills > 0 ? ` (${c.refused_with_refills} still refused)` : ''}`, '-', '-', '-', '-', '-',
    ]);
    const vm = f.cells.map((c) => [
      `VM: ${c.atomic}, ${f.runtime} (${c.runs - c.not_ok}/${c.runs} ok)`, '-', '-', cell('count', c.transient_created),
      cell('count', c.transient_failed_atomic), cell('count', c.work_runs), String(c.runs_exhausted), cell('bytes', c.atomic_size_end), cell('count', c.dynamic_pools), cell('count', c.drops),
      c.first_failure_s === null ? '-' : `${c.first_failure_s.toFixed(2)} s`,
    ]);
    return {
      head: ['burst', '>atomic pools at boot', '>maps beyond the pool', '>transient pools made', '>refused (atomic)', '>kworker refills (counted: needed; VM: run)', '>runs exhausted', '>atomic size at end', '>dynamic pools', '>drops', '>first failure'],
      rows: [...counted, ...vm],
    };
  },
  chart(f) {
    return {
      title: 'The counted burst: maps beyond the full swiotlb pool against the transient pools the default atomic pool holds before a refill',
      kind: 'bars', xLabel: 'guest', yLabel: 'maps / transient pools', x: f.counts.map((c) => `${c.mem} guest`),
      series: [
        { label: 'maps beyond the swiotlb pool', values: f.counts.map((c) => c.maps - c.from_swiotlb) },
        { label: 'transient pools held before a refill', values: f.counts.map((c) => c.transient_held) },
        { label: 'kworker refills the burst needs', values: f.counts.map((c) => c.refills_needed) },
      ],
    };
  },
};
