// The VM's workload plan: fio jobs (or the default workload) expanded into job instances (one per
// numjobs clone) and spread over the vCPUs, plus the shared statistics layout they report into.
import { InputError } from '../errors.js';
import type { FioBlockSize, FioJob, FioPerDirection, FioRw } from '../workload/fio.js';
import { HISTOGRAM_BYTES } from '../report/histogram.js';
import { MAX_QUEUE_DEPTH, MAX_SG } from '../devices/queue.js';
import { Rng } from '../util/rng.js';
import { printable } from '../util/quote.js';
import { MIN_VERIFY_UNIT, SECTOR_BYTES } from './verify.js';
import { isPolled } from './polling.js';
import type { IologSummary } from '../workload/iolog.js';
import { type IologSpec, IologRegions, cloneIolog, iologMaxRequest } from './iolog-replay.js';

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
  /** verify=: the bytes of one verified unit (verifyUnit), 0 when the clone's data is not verified. */
  verifyUnitBytes: number;
  /**
   * fio's verify phase (do_verify=1, the default, with verify=): a write-only clone reads back and
   * checks what it wrote once its writes are done.
   */
  verifyPhase: boolean;
  /** Metadata bytes mapped with each storage request (md_per_io_size); 0 for none. */
  mdBytes: number;
  seed: number;
  /** Largest block this clone can issue (sizes its buffers). */
  maxBs: number;
  /** hipri was set (polled completions asked for). */
  hipri: boolean;
  /** Its completions are polled on the vCPU's poll queue (hipri with nvme.poll_queues >= 1; polling.ts). */
  polled: boolean;
  /** read_iolog: the log this clone replays instead of its rw/bs pattern. */
  iolog?: IologSpec;
  /** write_iolog: the log this clone writes (v3), and the file name its lines carry. */
  writeIolog?: { path: string; fileName: string };
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
/** When a clone with a verify phase ended its writes and began reading back (0 without one). */
export const I_VERIFY_START_MS = 12;
/** Polled completions (polling.ts): poll-loop looks at the poll queue with this clone's I/O in flight. */
export const I_POLLS = 13;
/** Completions of this clone reaped by polling. */
export const I_POLL_REAPED = 14;
/** Interrupt-driven completions of this clone taken while its vCPU slept in the throttle wait. */
export const I_REAPED_IN_WAIT = 15;
/** A replayed log's trims (NVMe deallocate: the 16-byte range list is what is mapped), their bytes, their errors. */
export const I_TRIM_IOS = 16;
export const I_TRIM_BYTES = 17;
export const I_TRIM_ERRORS = 18;
/** A replayed log's sync and datasync actions (flushes: no data), and its file actions (add, open, close). */
export const I_SYNCS = 19;
export const I_FILE_ACTIONS = 20;
export const INST_FIELDS = 24;

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
  /** nvme.poll_queues (polling.ts); default 0: no poll queues, every completion by interrupt. */
  nvmePollQueues?: number;
  /** read_iolog: every log the jobs name, scanned (scanIolog), by path. */
  iologs?: ReadonlyMap<string, IologSummary>;
}

export interface Plan {
  instances: JobInstance[];
  /** Instances per group. */
  groupSizes: number[];
  /** Backing store needed by the storage device. */
  capacityBytes: number;
}

/**
 * A direction's block sizes as the vCPU draws them: a bssplit's entries in fio's lookup order,
 * ascending percentage (options.c sorts them with bs_cmp), equal percentages in the order written.
 * The order does not change how often each size is drawn, only where a size that does not fit falls.
 */
export function drawOrder(bs: FioBlockSize): FioBlockSize {
  if (bs.kind !== 'split') return bs;
  return { kind: 'split', entries: bs.entries.map((e, i) => ({ e, i })).sort((a, b) => a.e.percent - b.e.percent || a.i - b.i).map(({ e }) => e) };
}

/**
 * The size of the next I/O of a direction (`bs` in drawOrder), at most `limit` bytes, as fio's
 * get_next_buflen picks it: a fixed size is itself; a range is uniform between its ends, rounded
 * down to a multiple of `align` (the direction's smallest size, or 1 with blocksize_unaligned); a
 * bssplit walks its entries, the first whose cumulative share exceeds the draw wins, and one that
 * is larger than `limit` passes its turn to the next entry that fits. A range draw or a walk that
 * found nothing that fits is drawn again. The caller guarantees a size that fits can be drawn
 * (planWorkload refuses a job whose minDrawableSize is above its region), so this ends.
 */
export function pickBlockSize(bs: FioBlockSize, align: number, rng: Rng, limit: number): number {
  if (bs.kind === 'fixed') return bs.bytes;
  for (;;) {
    if (bs.kind === 'range') {
      const n = bs.minBytes + rng.below(bs.maxBytes - bs.minBytes + 1);
      const len = Math.max(bs.minBytes, n - (n % align));
      if (len <= limit) return len;
      continue;
    }
    const p = rng.below(100);
    let cum = 0;
    for (const e of bs.entries) {
      cum += e.percent;
      if (p < cum && e.bytes <= limit) return e.bytes;
    }
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * The unit verify= checks a storage job's data in (verify.ts), or why it cannot. Every size the job
 * issues and every offset it picks must be a whole number of units, so that each unit is written
 * and read whole: the unit divides each size a direction draws (a fixed size; a bsrange's smallest,
 * whose multiples are drawn; each bssplit entry) and the offset step (the direction's smallest size,
 * or 1 byte with blocksize_unaligned, which also lets a range draw any size). A 512-byte sector when
 * that divides them all; else the largest common unit, as fio's verify_interval (default the block
 * size) puts a header every N bytes, when it can hold the header (MIN_VERIFY_UNIT, whole words).
 */
export function verifyUnit(job: Pick<FioJob, 'rw' | 'bs' | 'blocksizeUnaligned'>): { unit: number } | { why: string } {
  const only = onlyReads(job.rw);
  // A write-only job's verify phase reads back with its write sizes; a read-only job reads only.
  const dirs: ('read' | 'write')[] = only === null ? ['read', 'write'] : only ? ['read'] : ['write'];
  let g = 0;
  for (const d of dirs) {
    const bs = job.bs[d];
    const step = job.blocksizeUnaligned ? 1 : minBlockSize(bs);
    g = gcd(g, step);
    if (bs.kind === 'fixed') g = gcd(g, bs.bytes);
    else if (bs.kind === 'range') g = gcd(g, job.blocksizeUnaligned ? 1 : bs.minBytes);
    else for (const e of bs.entries) if (e.percent > 0) g = gcd(g, e.bytes);
  }
  if (g % SECTOR_BYTES === 0) return { unit: SECTOR_BYTES };
  if (g >= MIN_VERIFY_UNIT && g % 4 === 0) return { unit: g };
  const why = job.blocksizeUnaligned
    ? 'blocksize_unaligned lets sizes and offsets fall on any byte'
    : `its block sizes and offsets have no common unit of ${MIN_VERIFY_UNIT} bytes or more in whole 4-byte words (largest common divisor ${g} bytes)`;
  return { why: `${why}; the emulator verifies whole units that carry a ${MIN_VERIFY_UNIT}-byte header` };
}

/**
 * The smallest size a direction can issue: the fixed size, the range's low end, or the smallest
 * bssplit entry with a share above 0% (a 0% entry is never drawn, as in fio's lookup).
 */
export function minDrawableSize(bs: FioBlockSize): number {
  if (bs.kind !== 'split') return minBlockSize(bs);
  return Math.min(...bs.entries.filter((e) => e.percent > 0).map((e) => e.bytes));
}

/**
 * The vCPU of every clone, job by job: the clone's cpus_allowed in turn, or round robin over all
 * vCPUs (one counter across the jobs that have no cpus_allowed).
 */
function placeClones(jobs: readonly FioJob[], vcpus: number): number[][] {
  let rr = 0;
  return jobs.map((job) => Array.from({ length: job.numjobs }, (_, clone) => {
    const allowed = job.cpusAllowed;
    return allowed !== undefined && allowed.length > 0 ? allowed[clone % allowed.length]! : rr++ % vcpus;
  }));
}

/** Largest total iodepth on one vCPU's queue of each device, with the jobs that make it up. */
function deepestQueue(jobs: readonly FioJob[], cpus: readonly (readonly number[])[]): { cpu: number; engine: 'storage' | 'net'; depth: number; parts: Map<number, number> } {
  const depth = new Map<string, { cpu: number; engine: 'storage' | 'net'; depth: number; parts: Map<number, number> }>();
  let worst = { cpu: 0, engine: 'storage' as 'storage' | 'net', depth: 0, parts: new Map<number, number>() };
  jobs.forEach((job, j) => {
    for (const cpu of cpus[j]!) {
      const key = `${cpu}:${job.engine}`;
      let q = depth.get(key);
      if (q === undefined) depth.set(key, (q = { cpu, engine: job.engine, depth: 0, parts: new Map() }));
      q.depth += job.iodepth;
      q.parts.set(j, (q.parts.get(j) ?? 0) + 1);
      if (q.depth > worst.depth) worst = q;
    }
  });
  return worst;
}

/**
 * Every vCPU has one submission queue per device of at most MAX_QUEUE_DEPTH commands (as an NVMe
 * I/O queue has a fixed size), and every I/O in flight holds a command: the iodepths of the clones
 * placed on one vCPU must add up to at most MAX_QUEUE_DEPTH. Checked here, where the placement is
 * known, so that a job file that passes every per-job check cannot reach the queue's assertion.
 */
function checkQueueDepths(jobs: readonly FioJob[], vcpus: number, cpus: readonly (readonly number[])[]): void {
  const worst = deepestQueue(jobs, cpus);
  if (worst.depth <= MAX_QUEUE_DEPTH) return;
  const parts = [...worst.parts].map(([j, n]) => `${n} x ${printable(jobs[j]!.name)} iodepth=${jobs[j]!.iodepth}`).join(', ');
  const device = worst.engine === 'storage' ? 'nvme0' : 'eth0';
  // How many vCPUs the same jobs would need, when more would help (cpus_allowed pins clones).
  let enough: number | undefined;
  for (let v = vcpus + 1; v <= MAX_VCPUS_SUGGESTED; v++) {
    if (deepestQueue(jobs, placeClones(jobs, v)).depth <= MAX_QUEUE_DEPTH) {
      enough = v;
      break;
    }
  }
  const more = enough !== undefined ? `, or run on --vcpus ${enough}` : '';
  throw new InputError('EBADJOB', `vCPU ${worst.cpu} would have ${worst.depth} I/Os in flight on its ${device} queue (${parts}), above the ${MAX_QUEUE_DEPTH} commands of one queue; lower iodepth or numjobs so that the iodepths on each vCPU add up to at most ${MAX_QUEUE_DEPTH}${more}`);
}
/** The largest --vcpus the queue-depth message suggests (the flag's own limit). */
const MAX_VCPUS_SUGGESTED = 256;

/**
 * fio refuses a job whose size is below its smallest block size (filesetup.c: o->size < td_min_bs,
 * "fio: blocksize too large for data set"; td_min_bs is the least of the directions' min_bs). A
 * direction the job issues whose own smallest size does not fit would do no I/O at all in fio; it is
 * refused too rather than shrunk. Sizes of a bsrange or bssplit above the region are not issued
 * (see the vCPU's pickSize, as fio's get_next_buflen draws again until a size fits).
 */
function checkSizeFitsBlocks(job: FioJob, region: number, capped: boolean): void {
  const only = onlyReads(job.rw);
  const dirs: ('read' | 'write')[] = only === null ? ['read', 'write'] : only ? ['read'] : ['write'];
  const fioMin = Math.min(minBlockSize(job.bs.read), minBlockSize(job.bs.write));
  const need = Math.max(fioMin, ...dirs.map((d) => minDrawableSize(job.bs[d])));
  if (region >= need) return;
  const why = capped ? `its size of ${region} bytes (the --size cap)` : `size=${region} bytes`;
  const which = dirs.length === 2 ? 'a read or write' : `a ${dirs[0]}`;
  throw new InputError('EBADJOB', `job ${printable(job.name)}: ${why} is smaller than ${which} block of ${need} bytes (fio: blocksize too large for data set); use a size of at least ${need} bytes${capped ? ' (--size)' : ''}, or a block size of at most ${region} bytes`);
}

/**
 * The bytes one sequential pass over `region` moves: fio ends the pass at the last whole block that
 * fits (fill_io_u: a block that would run past the end of the file ends the job), so with one fixed
 * block size it is floor(region / bs) blocks; a size=512k bs=1500 write job writes 349 blocks, not a
 * 350th wrapped to offset 0. Random jobs, and sizes that vary, take the whole region.
 */
function sequentialPassBytes(job: FioJob, region: number): number {
  if (job.rw !== 'read' && job.rw !== 'write' && job.rw !== 'readwrite') return region;
  const only = onlyReads(job.rw);
  const dirs = only === null ? [job.bs.read, job.bs.write] : [only ? job.bs.read : job.bs.write];
  const bs = dirs[0]!;
  if (bs.kind !== 'fixed' || dirs.some((d) => d.kind !== 'fixed' || d.bytes !== bs.bytes)) return region;
  return Math.floor(region / bs.bytes) * bs.bytes;
}

/** A file name as an iolog line carries it: one word (white space would split the line), at most 256 characters. */
function iologFileName(name: string): string {
  return name.replace(/\s/g, '_').slice(0, 256);
}

/** Expand jobs into instances, place them on vCPUs and lay out their device regions. */
export function planWorkload(input: PlanInput): Plan {
  const instances: JobInstance[] = [];
  const regions = new Map<string, { offset: number; bytes: number }>();
  let capacity = 0;
  let group = 0;
  const groupSizes: number[] = [];
  // The plan's own random choices (startdelay=a-b), reproducible by --seed.
  const rng = new Rng(input.seed ^ 0x5d1a7e);
  const cpus = placeClones(input.jobs, input.vcpus);
  const iologRegions = new IologRegions();
  const logOf = (path: string): IologSummary => {
    const s = input.iologs?.get(path);
    if (s === undefined) throw new Error(`planWorkload: iolog ${path} was not scanned`);
    return s;
  };
  for (const job of input.jobs) for (const p of job.readIolog ?? []) iologRegions.note(logOf(p));
  const writeLogs = new Map<string, string>();
  input.jobs.forEach((job, j) => {
    if (job.stonewall && j > 0 && (groupSizes[group] ?? 0) > 0) group++;
    if (job.writeIolog !== undefined) {
      const other = writeLogs.get(job.writeIolog);
      if (other !== undefined) throw new InputError('EBADJOB', `jobs ${printable(other)} and ${printable(job.name)} both write_iolog=${printable(job.writeIolog, 256)}: their lines would be interspersed; give each job its own log`);
      writeLogs.set(job.writeIolog, job.name);
    }
    const replay = job.readIolog !== undefined;
    const maxBs = replay ? 0 : Math.max(maxBlockSize(job.bs.read), maxBlockSize(job.bs.write));
    if (maxBs > input.maxRequestBytes) {
      throw new InputError('EBADJOB', `job ${printable(job.name)}: block size ${maxBs} is larger than the ${input.maxRequestBytes}-byte requests the emulated NVMe accepts (${MAX_SG} segments); use bs <= ${input.maxRequestBytes}`);
    }
    if (job.iodepth > MAX_QUEUE_DEPTH) {
      throw new InputError('EBADJOB', `job ${printable(job.name)}: iodepth=${job.iodepth} is above the queue depth limit; use at most ${MAX_QUEUE_DEPTH}`);
    }
    for (const cpu of job.cpusAllowed ?? []) {
      if (cpu >= input.vcpus) {
        throw new InputError('EBADJOB', `job ${printable(job.name)}: cpus_allowed names CPU ${cpu}, but the VM has ${input.vcpus} vCPUs (0-${input.vcpus - 1})`);
      }
    }
    if (job.sizePercent !== undefined && job.sizeBytes === undefined) {
      throw new InputError('EBADJOB', `job ${printable(job.name)}: size=${job.sizePercent}% is a share of a device size, and the emulated disk is sized from the jobs' own sizes; give size in bytes (e.g. size=64M)`);
    }
    const asked = job.sizeBytes ?? input.defaultSizeBytes;
    const region = Math.min(asked, input.sizeCapBytes);
    if (job.engine === 'storage' && !replay) checkSizeFitsBlocks(job, region, region < asked);
    const ioLimit = Math.min(job.ioSizeBytes ?? sequentialPassBytes(job, region), input.sizeCapBytes);
    const runtimeMs = Math.min(job.runtimeMs ?? Infinity, input.runtimeCapMs);
    const vu = job.verify !== 'none' && job.engine === 'storage' ? verifyUnit(job) : undefined;
    const verifyBytes = vu !== undefined && 'unit' in vu ? vu.unit : 0;
    for (let clone = 0; clone < job.numjobs; clone++) {
      // Clones with the same filename share a region (like fio's shared file); otherwise each has its own.
      const key = job.filename !== undefined ? `file:${job.filename}` : `job:${j}:${clone}`;
      let r = regions.get(key);
      // A replayed log's offsets are in its own files, placed by iologRegions: no region of the job's own.
      let iolog: IologSpec | undefined;
      let cloneMaxBs = maxBs;
      if (replay) {
        const s = logOf(cloneIolog(job.readIolog!, clone));
        const placed = iologRegions.place(s, capacity);
        capacity = placed.capacity;
        iolog = { path: s.path, version: s.version, replay: job.replay, fileOffsets: placed.offsets };
        cloneMaxBs = iologMaxRequest(s, job.name, input.maxRequestBytes);
        r = { offset: 0, bytes: 0 };
      }
      if (r === undefined && job.engine === 'storage') {
        r = { offset: capacity, bytes: region };
        capacity += region;
        regions.set(key, r);
      }
      const cpu = cpus[j]![clone]!;
      instances.push({
        id: instances.length, job: j, clone, name: job.name, group, cpu, engine: job.engine, rw: job.rw,
        rwmixread: job.rwmixread, bs: job.bs, blocksizeUnaligned: job.blocksizeUnaligned, iodepth: job.iodepth,
        regionOffset: r?.offset ?? 0, regionBytes: r?.bytes ?? region,
        ioLimitBytes: job.timeBased || replay ? Infinity : ioLimit,
        timeBased: job.timeBased && Number.isFinite(runtimeMs), runtimeMs,
        // fio's read_iolog_get bypasses the rate check (set_rw_ddir): a replay is not rate limited.
        rampTimeMs: job.rampTimeMs,
        rateBytesPerSec: replay ? { read: undefined, write: undefined } : job.rateBytesPerSec,
        rateIops: replay ? { read: undefined, write: undefined } : job.rateIops,
        // startdelay=a-b: each clone picks its own delay in the range, as fio does.
        thinktimeUs: job.thinktimeUs, startdelayMs: job.startdelayMs + rng.float() * (job.startdelayMaxMs - job.startdelayMs),
        verifyUnitBytes: verifyBytes,
        verifyPhase: verifyBytes > 0 && job.doVerify && onlyReads(job.rw) === false,
        mdBytes: job.engine === 'storage' ? job.mdPerIoSizeBytes : 0, seed: (input.seed * 1_000_003 + instances.length * 7919) >>> 0, maxBs: cloneMaxBs,
        hipri: job.hipri, polled: isPolled(job, input.nvmePollQueues ?? 0),
        ...(iolog !== undefined ? { iolog } : {}),
        // fio's default file name for a job without filename=: jobname.jobnumber.filenumber.
        ...(job.writeIolog !== undefined ? { writeIolog: { path: job.writeIolog, fileName: iologFileName(job.filename ?? `${job.name}.${instances.length}.0`) } } : {}),
      });
      groupSizes[group] = (groupSizes[group] ?? 0) + 1;
    }
  });
  checkQueueDepths(input.jobs, input.vcpus, cpus);
  return { instances, groupSizes, capacityBytes: capacity };
}
