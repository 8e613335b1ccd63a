// Experiment 4, kelley-generous-default: Michael Kelley's remark in the hiwater patch (seed 003) that
// the automatic sizing "generously allocates" swiotlb memory. For each shipped job at 8, 32 and 64
// vCPUs: the CoCo default pool the emulator boots (planDefaultPool, the kernel's sizing code) against
// the smallest pool the kernel can boot that serves the job with no map failure, found by size's
// search (searchSmallest) over pools of one 128-slot segment per area doubled.
import { readdirSync } from 'node:fs';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, roundupPowOfTwo } from '../swiotlb/constants.js';
import { planDefaultPool } from '../swiotlb/sizing.js';
import { missed, parseTarget, searchSmallest } from '../sweep/size.js';
import { projectRoot } from '../util/worker-file.js';
import { formatBytes, parseSize } from '../util/units.js';
import { join } from 'node:path';
import { config, pct, repeated, shippedJob } from './measure.js';
import type { Experiment } from './types.js';

/** "Generous": the default at least this many times the pool that serves the job (half of it or more wasted). */
export const GENEROUS_FACTOR = 2;
export const MEM = '16G';

interface SizeCell {
  job: string;
  vcpus: number;
  default_nslabs: number;
  /** The smallest passing pool (a power of two, as the kernel boots swiotlb=); null when none up to the default serves. */
  smallest_nslabs: number | null;
  probes: number;
  /** The last failing probe's reason (what a smaller pool hit). */
  why: string | null;
}

export interface GenerousDefaultFigures {
  mem: string;
  runtime: string;
  cells: SizeCell[];
}

const wasted = (c: SizeCell): number | null => (c.smallest_nslabs === null ? null : (c.default_nslabs - c.smallest_nslabs) * IO_TLB_SIZE);
const generous = (c: SizeCell): boolean => c.smallest_nslabs !== null && c.default_nslabs >= GENEROUS_FACTOR * c.smallest_nslabs;

export const kelleyGenerousDefault: Experiment<GenerousDefaultFigures> = {
  name: 'kelley-generous-default',
  number: 4,
  claim: {
    author: 'Michael Kelley',
    source: 'seed 003_5ce201afaddf25c4.txt ("[PATCH v4 1/1] swiotlb: Track and report io_tlb_used high water marks in debugfs", Apr 2023)',
    quote: 'The current automatic algorithm generously allocates swiotlb bounce buffer memory, and may be wasting significant memory in many use cases.',
  },
  setup: `Every job file shipped in jobs/, on a ${MEM} guest at 8, 32 and 64 vCPUs, static policy. The CoCo default is what the emulator boots for that guest (the kernel's swiotlb_adjust_size: 6% of memory, 64 MiB..1 GiB, rounded up to a power of two: 1 GiB here). The smallest pool is size's search (searchSmallest) over pools of one 128-slot segment per area (areas = vCPUs rounded up to a power of two) times a power of two, up to the default; a probe passes when its run has no map failure. Each power of two is a pool the kernel boots as it is (swiotlb=<nslabs>,<nareas>), and any smaller passing slot count would round up to it, so the first passing probe is the smallest bootable pool. Runs are capped at a short runtime to bound the cost.`,
  cannot: 'Which workloads a real CoCo guest runs, and for how long: a short run sees a short run\'s peak (a longer one can need more), the jobs are this repository\'s examples, not a survey, and each probe is one run (the size command\'s --repeat would judge several on their worst). "Significant" is not quantified in the patch: the rule takes it as half the default or more.',
  rule: `A (job, vCPUs) cell is wasteful when the default is at least ${GENEROUS_FACTOR}x the smallest pool that served it (half the default or more unused); a cell no pool up to the default served is not. Reproduced when at least 75% of the cells are wasteful; refuted when at most 25% are; partly otherwise.`,
  forms: {
    full: 'every shipped job at 8, 32 and 64 vCPUs, 500 ms per probe, 1 run per probe.',
    quick: 'jobs/randrw-4k.fio and jobs/net.fio at 8 vCPUs, 300 ms per probe, 1 run per probe.',
  },
  repeats: { full: 1, quick: 1 },
  async run(ctx) {
    const runtime = ctx.quick ? '300ms' : '500ms';
    const jobs = ctx.quick ? ['randrw-4k.fio', 'net.fio'] : readdirSync(join(projectRoot(), 'jobs')).filter((f) => f.endsWith('.fio')).sort();
    const vcpuCounts = ctx.quick ? [8] : [8, 32, 64];
    const memBytes = parseSize(MEM, '--mem');
    const target = [parseTarget('failures=0')];
    const cells: SizeCell[] = [];
    for (const vcpus of vcpuCounts) {
      const step = IO_TLB_SEGSIZE * roundupPowOfTwo(vcpus);
      const def = planDefaultPool({ cpus: vcpus, memBytes, coco: true }).nslabs;
      const top = Math.log2(def / step) + 1; // exponent e in 1..top: step * 2^(e-1) slots, the last one the default
      for (const job of jobs) {
        ctx.progress(`${job} at ${vcpus} vCPUs`);
        let probes = 0;
        let why: string | null = null;
        const pass = async (e: number): Promise<boolean> => {
          probes++;
          const nslabs = step * 2 ** (e - 1);
          const recs = await ctx.run(repeated(config({ job: shippedJob(job), vcpus, mem: MEM, pool: { nslabs }, runtime }), ctx.repeat));
          const miss = recs.map((r) => missed(r, target)).find((m) => m !== undefined);
          if (miss !== undefined) why = `${nslabs} slots: ${miss}`;
          return miss === undefined;
        };
        const e = await searchSmallest(1, top, pass);
        cells.push({ job: `jobs/${job}`, vcpus, default_nslabs: def, smallest_nslabs: e === null ? null : step * 2 ** (e - 1), probes, why });
      }
    }
    return { mem: MEM, runtime, cells };
  },
  judge(f) {
    const n = f.cells.length;
    const w = f.cells.filter(generous);
    const share = n === 0 ? 0 : w.length / n;
    const total = f.cells.reduce((s, c) => s + (wasted(c) ?? 0), 0);
    const worst = f.cells.filter((c) => !generous(c)).map((c) => `${c.job} at ${c.vcpus} vCPUs ${c.smallest_nslabs === null ? 'needs more than the default' : `needs ${formatBytes(c.smallest_nslabs * IO_TLB_SIZE)}`}`);
    const text = `in ${w.length} of ${n} cells (${pct(share, 0)}) the default is at least ${GENEROUS_FACTOR}x the smallest pool that served the job, ${formatBytes(total)} unused over all cells${worst.length > 0 ? `; not wasteful: ${worst.slice(0, 4).join(', ')}${worst.length > 4 ? ', ...' : ''}` : ''}`;
    if (n > 0 && share >= 0.75) return { verdict: 'reproduced', why: `The default is generous: ${text}.` };
    if (share <= 0.25) return { verdict: 'refuted', why: `The default is not generous for these jobs: ${text}.` };
    return { verdict: 'partly', why: `The default is generous for some jobs only: ${text}.` };
  },
  table(f) {
    return {
      head: ['job', '>vCPUs', '>CoCo default', '>smallest that served', '>wasted', '>wasted/default', '>probes'],
      rows: f.cells.map((c) => {
        const w = wasted(c);
        return [
          c.job, String(c.vcpus), formatBytes(c.default_nslabs * IO_TLB_SIZE),
          c.smallest_nslabs === null ? 'none up to the default' : `${formatBytes(c.smallest_nslabs * IO_TLB_SIZE)} (${c.smallest_nslabs} slots)`,
          w === null ? '-' : formatBytes(w), w === null ? '-' : pct(w / (c.default_nslabs * IO_TLB_SIZE)), String(c.probes),
        ];
      }),
    };
  },
  chart(f) {
    const vcpus = [...new Set(f.cells.map((c) => c.vcpus))];
    const jobs = [...new Set(f.cells.map((c) => c.job))];
    return {
      title: `Smallest pool that served each job against the CoCo default (${f.mem} guest), MiB`,
      kind: 'bars', xLabel: 'job', yLabel: 'MiB', x: jobs.map((j) => j.replace(/^jobs\//, '').replace(/\.fio$/, '')),
      series: [
        { label: 'CoCo default', values: jobs.map((j) => { const c = f.cells.find((x) => x.job === j); return c === undefined ? null : (c.default_nslabs * IO_TLB_SIZE) / 2 ** 20; }) },
        ...vcpus.map((v) => ({ label: `smallest, ${v} vCPUs`, values: jobs.map((j) => { const c = f.cells.find((x) => x.job === j && x.vcpus === v); return c?.smallest_nslabs == null ? null : (c.smallest_nslabs * IO_TLB_SIZE) / 2 ** 20; }) })),
      ],
    };
  },
};
