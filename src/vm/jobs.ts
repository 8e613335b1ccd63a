// The VM's workload plan: fio jobs (or the default workload) expanded into job instances (one per
// numjobs clone) and spread over the vCPUs, plus the shared statistics layout they report into.
import { InputError } from '../errors.js';
import type { FioBlockSize, FioJob, FioPerDirection, FioRw } from '../workload/fio.js';
import { HISTOGRAM_BYTES } from '../report/histogram.js';
import { MAX_QUEUE_DEPTH, MAX_SG } from '../devices/queue.js';
import { Rng } from '../util/rng.js';

/** What one vCPU needs to run one clone of a job. Plain data: it crosses into the worker. */
export interface JobInstance {
  /** Index into the instance statistics and histograms. */
  id: number;
  /** Index of the job (section) it is a clone of. */
  job: number;
  clone: number;
  name: string;
  /** Stonewall group: 0, 1, ... */
  group: number;
  cpu: number;
  engine: 'storage' | 'net';
  rw: FioJob['rw'];
  rwmixread: number;
  bs: FioPerDirection<FioBlockSize>;
  blocksizeUnaligned: boolean;
  iodepth: number;
  /** Device region this clone works in. */
  regionOffset: number;
  regionBytes: number;
  /** Bytes to transfer; Infinity with timeBased. */
  ioLimitBytes: number;
  timeBased: boolean;
  /** Infinity when unbounded. */
  runtimeMs: number;
  rampTimeMs: number;
  rateBytesPerSec: FioPerDirection<number | undefined>;
  rateIops: FioPerDirection<number | undefined>;
  thinktimeUs: number;
  startdelayMs: number;
  verify: boolean;
  /** Metadata bytes mapped with each storage request (md_per_io_size); 0 for none. */
  mdBytes: number;
  seed: number;
  /** Largest block this clone can issue (sizes its buffers). */
  maxBs: number;
}

// Per-instance statistics (Float64, INST_FIELDS each), written by the owning vCPU only.
export const I_READ_IOS = 0;
export const I_READ_BYTES = 1;
export const I_WRITE_IOS = 2;
export const I_WRITE_BYTES = 3;
export const I_READ_ERRORS = 4;
export const I_WRITE_ERRORS = 5;
export const I_DROPS = 6;
export const I_VERIFY_OK = 7;
export const I_VERIFY_BAD = 8;
export const I_UNWRITTEN = 9;
export const I_START_MS = 10;
export const I_END_MS = 11;
export const INST_FIELDS = 16;

/**
 * Histograms per instance, of completion latency: of reads, of writes, and ([RFC] throttling) of the
 * storage requests whose maps were throttled and of those whose maps were not.
 */
export const HISTOGRAM_KINDS = ['read', 'write', 'throttled', 'unthrottled'] as const;
export type HistogramKind = (typeof HISTOGRAM_KINDS)[number];
export function histogramOffset(instance: number, kind: HistogramKind): number {
  return (HISTOGRAM_KINDS.length * instance + HISTOGRAM_KINDS.indexOf(kind)) * HISTOGRAM_BYTES;
}
export function histogramsBytes(instances: number): number {
  return HISTOGRAM_KINDS.length * instances * HISTOGRAM_BYTES;
}

/** true for a job that only reads, false for one that only writes, null for a mix (rwmixread decides each I/O). */
export function onlyReads(rw: FioRw): boolean | null {
  if (rw === 'read' || rw === 'randread') return true;
  if (rw === 'write' || rw === 'randwrite') return false;
  return null;
}

/**
 * One instance's limit on its whole I/O stream (bytes or I/Os per second) from fio's per-direction
 * rate= or rate_iops=. Each direction may use its own limit and the mix picks the direction of each
 * I/O, so the stream is held back by the direction that reaches its limit first: the least of limit /
 * share over the directions that have a limit and a share. undefined: no limit.
 */
export function streamRateLimit(rw: FioRw, rwmixread: number, limit: FioPerDirection<number | undefined>): number | undefined {
  const only = onlyReads(rw);
  const readShare = only === null ? rwmixread / 100 : only ? 1 : 0;
  let out: number | undefined;
  for (const [cap, share] of [[limit.read, readShare], [limit.write, 1 - readShare]] as const) {
    if (cap === undefined || share <= 0) continue;
    out = Math.min(out ?? Infinity, cap / share);
  }
  return out;
}

export function maxBlockSize(bs: FioBlockSize): number {
  if (bs.kind === 'fixed') return bs.bytes;
  if (bs.kind === 'range') return bs.maxBytes;
  return Math.max(...bs.entries.map((e) => e.bytes));
}

export function minBlockSize(bs: FioBlockSize): number {
  if (bs.kind === 'fixed') return bs.bytes;
  if (bs.kind === 'range') return bs.minBytes;
  return Math.min(...bs.entries.map((e) => e.bytes));
}

export interface PlanInput {
  jobs: readonly FioJob[];
  vcpus: number;
  /** --runtime cap (ms), Infinity when none. */
  runtimeCapMs: number;
  /** --size cap (bytes), Infinity when none. */
  sizeCapBytes: number;
  /** Region used when a job gives no size. */
  defaultSizeBytes: number;
  seed: number;
  /** Largest bytes one request can map (MAX_SG entries of dma_max_mapping_size). */
  maxRequestBytes: number;
}

export interface Plan {
  instances: JobInstance[];
  /** Instances per group. */
  groupSizes: number[];
  /** Backing store needed by the storage device. */
  capacityBytes: number;
}

/** Expand jobs into instances, place them on vCPUs and lay out their device regions. */
export function planWorkload(input: PlanInput): Plan {
  const instances: JobInstance[] = [];
  const regions = new Map<string, { offset: number; bytes: number }>();
  let capacity = 0;
  let group = 0;
  let rr = 0;
  const groupSizes: number[] = [];
  // The plan's own random choices (startdelay=a-b), reproducible by --seed.
  const rng = new Rng(input.seed ^ 0x5d1a7e);
  input.jobs.forEach((job, j) => {
    if (job.stonewall && j > 0 && (groupSizes[group] ?? 0) > 0) group++;
    const maxBs = Math.max(maxBlockSize(job.bs.read), maxBlockSize(job.bs.write));
    if (maxBs > input.maxRequestBytes) {
      throw new InputError('EBADJOB', `job ${job.name}: block size ${maxBs} is larger than the ${input.maxRequestBytes}-byte requests the emulated NVMe accepts (${MAX_SG} segments); use bs <= ${input.maxRequestBytes}`);
    }
    if (job.iodepth > MAX_QUEUE_DEPTH) {
      throw new InputError('EBADJOB', `job ${job.name}: iodepth=${job.iodepth} is above the queue depth limit; use at most ${MAX_QUEUE_DEPTH}`);
    }
    for (const cpu of job.cpusAllowed ?? []) {
      if (cpu >= input.vcpus) {
        throw new InputError('EBADJOB', `job ${job.name}: cpus_allowed names CPU ${cpu}, but the VM has ${input.vcpus} vCPUs (0-${input.vcpus - 1})`);
      }
    }
    if (job.sizePercent !== undefined && job.sizeBytes === undefined) {
      throw new InputError('EBADJOB', `job ${job.name}: size=${job.sizePercent}% is a share of a device size, and the emulated disk is sized from the jobs' own sizes; give size in bytes (e.g. size=64M)`);
    }
    const region = Math.min(job.sizeBytes ?? input.defaultSizeBytes, input.sizeCapBytes);
    const ioLimit = Math.min(job.ioSizeBytes ?? region, input.sizeCapBytes);
    const runtimeMs = Math.min(job.runtimeMs ?? Infinity, input.runtimeCapMs);
    for (let clone = 0; clone < job.numjobs; clone++) {
      // Clones with the same filename share a region (like fio's shared file); otherwise each has its own.
      const key = job.filename !== undefined ? `file:${job.filename}` : `job:${j}:${clone}`;
      let r = regions.get(key);
      if (r === undefined && job.engine === 'storage') {
        r = { offset: capacity, bytes: region };
        capacity += region;
        regions.set(key, r);
      }
      const allowed = job.cpusAllowed;
      const cpu = allowed !== undefined && allowed.length > 0 ? allowed[clone % allowed.length]! : rr++ % input.vcpus;
      instances.push({
        id: instances.length, job: j, clone, name: job.name, group, cpu, engine: job.engine, rw: job.rw,
        rwmixread: job.rwmixread, bs: job.bs, blocksizeUnaligned: job.blocksizeUnaligned, iodepth: job.iodepth,
        regionOffset: r?.offset ?? 0, regionBytes: r?.bytes ?? region,
        ioLimitBytes: job.timeBased ? Infinity : ioLimit,
        timeBased: job.timeBased && Number.isFinite(runtimeMs), runtimeMs,
        rampTimeMs: job.rampTimeMs, rateBytesPerSec: job.rateBytesPerSec, rateIops: job.rateIops,
        // startdelay=a-b: each clone picks its own delay in the range, as fio does.
        thinktimeUs: job.thinktimeUs, startdelayMs: job.startdelayMs + rng.float() * (job.startdelayMaxMs - job.startdelayMs),
        verify: job.verify !== 'none',
        mdBytes: job.engine === 'storage' ? job.mdPerIoSizeBytes : 0, seed: (input.seed * 1_000_003 + instances.length * 7919) >>> 0, maxBs,
      });
      groupSizes[group] = (groupSizes[group] ?? 0) + 1;
    }
  });
  return { instances, groupSizes, capacityBytes: capacity };
}
