// A vCPU: one worker thread running the drivers' side of every job instance placed on it. The hot path
// (pick a block, fill, dma_map, submit, reap, dma_unmap, verify) works on shared memory only; the
// message ports are touched only at the ~10 ms yields (log batches, control-plane requests).
//
// Drivers, as the kernel's do it:
// - storage (NVMe-like): maps data with min_align_mask 0xFFF; a request larger than
//   dma_max_mapping_size becomes a scatter-gather list; a map failure fails that request with an I/O
//   error (never a crash);
// - NIC: maps from atomic context (no blocking, NO_WARN-free like most drivers) and drops the packet
//   when the map fails.
// Completions arrive as interrupts (the queue's CQ_IRQ word); unmap happens in interrupt context and
// never blocks. A polled job (hipri with nvme.poll_queues, polling.ts) uses the vCPU's poll queue
// instead, whose completions only this thread's poll loop reaps: never the throttle wait.
import { assert } from '../errors.js';
import type { GuestMemoryShared } from '../memory/boot.js';
import { GuestPhysMem } from '../memory/phys.js';
import { DecryptedArena } from '../memory/arena.js';
import { AtomicPool } from '../memory/atomic-pool.js';
import type { DynamicMemory } from '../swiotlb/dynamic.js';
import type { MessagePort } from 'node:worker_threads';
// The worker side of the log only: src/log/index.js would also load the main thread's machinery.
import type { LogChannel } from '../log/logger.js';
import { attachWorkerLogger } from '../log/worker-logger.js';
import { VcpuLog } from './vcpu-log.js';
import { exposeOnPort } from '../util/comlink.js';
import type { VcpuControlApi } from './control.js';
import { DmaDevice, swiotlbDevInit } from '../dma/device.js';
import {
  ScatterList, dmaMapSgtable, dmaMapSingle, dmaMaxMappingSize, dmaRecommendMayBlock, dmaUnmapSg, dmaUnmapSingle,
} from '../dma/direct.js';
import { ringDoorbell } from '../devices/device.js';
import {
  CMD_F64, CMD_INTS, CMD_LEN, CMD_NENTS, CMD_OPCODE, CMD_SG_LEN, CMD_STATUS, CMDF_OFFSET, CMDF_SG_ADDR, MAX_SG,
  CMDF_SUBMIT_MS, OP_READ, OP_TRIM, OP_WRITE, QP_CQ_HEAD, QP_CQ_IRQ, QP_CQ_TAIL, QP_SQ_TAIL, QP_VCPU_PARKED, QueuePair, STATUS_OK,
} from '../devices/queue.js';
import { GuestMemory } from '../memory/guest.js';
import { LatencyHistogram } from '../report/histogram.js';
import {
  DMA_ATTR_MAY_BLOCK, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, PAGE_SIZE, type DmaDirection, alignUp,
} from '../swiotlb/constants.js';
import { ThrottleStats } from '../swiotlb/throttle.js';
import { Rng } from '../util/rng.js';
import { fillBytes } from '../util/bytes.js';
import { STATS_FIELDS, STATS_STRIDE, TSTAT_HIGH_THROTTLED, TSTAT_LOW_THROTTLED } from '../swiotlb/layout.js';
import { IoTlbMem, type IoTlbMemShared, type SwiotlbEvent } from '../swiotlb/mem.js';
import { type RestrictedMemShared, attachRestrictedMem, rmemSwiotlbDeviceInit } from '../swiotlb/restricted.js';
import { nowMs, setTimeScale, timeScale, wallMs } from '../util/clock.js';
import type { FioBlockSize } from '../workload/fio.js';
import {
  I_DROPS, I_END_MS, I_READ_BYTES, I_READ_ERRORS, I_READ_IOS, I_START_MS, I_UNWRITTEN, I_VERIFY_BAD,
  I_VERIFY_OK, I_WRITE_BYTES, I_WRITE_ERRORS, I_WRITE_IOS, INST_FIELDS, type JobInstance, histogramOffset,
  I_POLLS, I_POLL_REAPED, I_REAPED_IN_WAIT, I_VERIFY_START_MS, I_FILE_ACTIONS, I_SYNCS, I_TRIM_BYTES, I_TRIM_ERRORS, I_TRIM_IOS, drawOrder, maxBlockSize, minBlockSize, onlyReads, pickBlockSize, streamRateLimit,
} from './jobs.js';
import { type VerifyCounts, fillSectors, verifySectors } from './verify.js';
import { type ReplayVcpuTask, runReplayVcpu } from '../trace/replay-vcpu.js';
import { IologReplay, NVME_DSM_RANGE_BYTES } from './iolog-replay.js';
import { A_OPEN, A_READ, A_TRIM, A_WRITE } from '../workload/iolog.js';
import { IologRecorder } from './iolog-write.js';
import { setDmaTracer } from '../dma/direct.js';
import { type DmaTraceChannel, DmaTracer } from '../trace/writer.js';

// Run control block (Int32): stop request, the start barrier, and per stonewall group the clones
// that have finished. Every vCPU counts itself into RUN_READY once its thread is up and its handles
// are built, then parks until the main thread sets RUN_GO, so that all jobs start together and the
// run's clock does not include thread start-up.
export const RUN_STOP = 0;
export const RUN_READY = 1;
export const RUN_GO = 2;
export const RUN_GROUP_DONE = 8;
export const RUN_CONTROL_INTS = 8 + 64;

// The stall watchdog's view of each vCPU (VcpuTask.quiet, one Float64 per vCPU): the time (nowMs)
// until which the vCPU expects no I/O of its own, because every unfinished instance waits in its
// startdelay, thinktime or rate limit with nothing in flight; 0 when I/O is expected (something in
// flight, something to submit, or a failed map's backoff, which is no reason to be idle); Infinity once
// every instance has finished. One writer (the vCPU), one reader (the main thread); an aligned 8-byte
// store is not torn on the 64-bit platforms Node runs on, and a stale value delays the watchdog by
// one sample at most. Invariant: a value > now only while no request of this vCPU is in flight.
export const QUIET_NONE = 0;

export interface VcpuTask {
  cpu: number;
  mem: IoTlbMemShared;
  /** Guest physical memory, the decrypted arena and the atomic pools (src/memory/boot.ts), to attach. */
  guestMemory: GuestMemoryShared;
  guest: SharedArrayBuffer;
  guestBase: number;
  /** Where this vCPU's slice of private memory starts. */
  guestOffset: number;
  nvmeQueue: SharedArrayBuffer;
  /** This vCPU's NVMe poll queue (polled jobs' I/O; no interrupt), or null when it runs none. */
  nvmePollQueue: SharedArrayBuffer | null;
  nvmeControl: SharedArrayBuffer;
  nicQueue: SharedArrayBuffer;
  nicControl: SharedArrayBuffer;
  instances: JobInstance[];
  groupSizes: number[];
  instanceStats: SharedArrayBuffer;
  histograms: SharedArrayBuffer;
  /** This vCPU's swiotlb statistics block (STATS_FIELDS float64s at cpu * STATS_STRIDE). */
  swiotlbStats: SharedArrayBuffer;
  /** [RFC] Throttle statistics blocks, one per vCPU (ThrottleStats.blocks). */
  throttleStats: SharedArrayBuffer;
  run: SharedArrayBuffer;
  /** Per vCPU, until when it expects no I/O (see QUIET_NONE): the stall watchdog's input. */
  quiet: SharedArrayBuffer;
  /** This vCPU's log channel (RunLogger.workerChannel). */
  log: LogChannel;
  /** The control plane's port: this thread serves VcpuControlApi on it. */
  control: MessagePort;
  /** write_iolog: where this vCPU's clones post their records (IologSink on the main thread). */
  iolog?: MessagePort;
  /** Fault injection (--inject-fault): throw this long (wall time) after the start, to exercise the failure path. */
  faultAtMs?: number;
  /** --time-scale K: the run's clock runs K times slower than the wall. */
  timeScale: number;
  /** npm run replay: this vCPU performs a kernel trace's DMA calls instead of job instances (src/trace/replay-vcpu.ts). */
  replay?: ReplayVcpuTask;
  /** Restricted DMA pools (swiotlb/restricted.ts): a device's own io_tlb_mem; empty without --restricted-pool. */
  restricted: RestrictedMemShared[];
  /** --trace-file: this vCPU's trace ring (src/trace/writer.ts). */
  dmaTrace?: DmaTraceChannel;
}

export interface VcpuResult {
  cpu: number;
  firstErrors: Record<number, string>;
  /** Records written to the log, and records the ratelimit suppressed. */
  logged: number;
  suppressed: number;
}

/** Wall ms between yields to the event loop (control-plane calls, log batches). */
const YIELD_EVERY_MS = 10;
/** Longest park, wall ms. */
const MAX_PARK_MS = 5;
/** NVMe's dma_set_min_align_mask(NVME_CTRL_PAGE_SIZE - 1): the planner sizes requests with it too. */
export const NVME_MIN_ALIGN_MASK = 0xfff;
export const DEFAULT_FAILED_MAP_BACKOFF_US = 50;
/** Longest single park at the start barrier before re-checking the stop flag. */
const BARRIER_PARK_MS = 50;

/** A vCPU's queues: NVMe's interrupt-driven one, NVMe's poll queue, the NIC's. */
type QueueKey = 'storage' | 'poll' | 'net';

/** In-flight request state, per instance slot (cid = instance's base slot + i). */
class Request {
  busy = false;
  dir: DmaDirection = DMA_TO_DEVICE;
  len = 0;
  devOffset = 0;
  startMs = 0;
  dma = DMA_MAPPING_ERROR;
  nents = 0;
  /** The metadata buffer's mapping (md_per_io_size), or DMA_MAPPING_ERROR. */
  md = DMA_MAPPING_ERROR;
  /** [RFC] A map of this request was throttled (it took throttle_sem, waiting or not). */
  throttled = false;
  /** Whole sectors of a verifying storage job: written with a verifiable pattern, checked when read. */
  verifiable = false;
  /** A replayed trim (NVMe deallocate) of this many bytes; 0 for a read or write. Its map is the 16-byte range list. */
  trimBytes = 0;
  constructor(readonly bufOffset: number, readonly mdOffset: number, readonly sgl: ScatterList) {}
}

class InstanceRun {
  readonly rng: Rng;
  readonly reqs: Request[];
  readonly stats: Float64Array;
  readonly readHist: LatencyHistogram;
  readonly writeHist: LatencyHistogram;
  readonly throttledHist: LatencyHistogram;
  readonly unthrottledHist: LatencyHistogram;
  readonly readAlign: number;
  readonly writeAlign: number;
  /** The directions' block sizes in drawOrder. */
  readonly readBs: FioBlockSize;
  readonly writeBs: FioBlockSize;
  /** The job's direction when it has only one (onlyReads), null for a mix. */
  readonly onlyReads: boolean | null;
  /** rate= and rate_iops= as limits on the whole stream (streamRateLimit). */
  readonly rateLimit: number | undefined;
  readonly iopsLimit: number | undefined;
  started = false;
  finished = false;
  startAt = 0;
  endAt = Infinity;
  nextSubmitAt = 0;
  /** nextSubmitAt was set by a failed map's backoff, not by a scheduled wait (startdelay, thinktime, rate). */
  backingOff = false;
  seqOffset = 0;
  bytesIssued = 0;
  /** The verify phase (spec.verifyPhase): reading back [verifyNext, writtenHi) in verifyChunk pieces. */
  verifying = false;
  verifyNext = 0;
  /** Extent of the verifiable writes, region offsets (what the verify phase reads back). */
  writtenLo = Infinity;
  writtenHi = 0;
  inflight = 0;
  firstError: string | null = null;
  /** read_iolog: the log this clone replays (opened when it starts), and write_iolog: the log it writes. */
  replay: IologReplay | null = null;
  wlog: IologRecorder | null = null;

  constructor(readonly spec: JobInstance, readonly cidBase: number, bufBase: number, bufStride: number, stats: Float64Array, hists: SharedArrayBuffer) {
    this.rng = new Rng(spec.seed);
    this.stats = stats;
    this.reqs = Array.from({ length: spec.iodepth }, (_, i) =>
      new Request(bufBase + i * bufStride, bufBase + i * bufStride + dataStride(spec), new ScatterList(MAX_SG)));
    this.readHist = new LatencyHistogram(hists, histogramOffset(spec.id, 'read'));
    this.writeHist = new LatencyHistogram(hists, histogramOffset(spec.id, 'write'));
    this.throttledHist = new LatencyHistogram(hists, histogramOffset(spec.id, 'throttled'));
    this.unthrottledHist = new LatencyHistogram(hists, histogramOffset(spec.id, 'unthrottled'));
    this.readAlign = spec.blocksizeUnaligned ? 1 : minBlockSize(spec.bs.read);
    this.writeAlign = spec.blocksizeUnaligned ? 1 : minBlockSize(spec.bs.write);
    this.readBs = drawOrder(spec.bs.read);
    this.writeBs = drawOrder(spec.bs.write);
    this.onlyReads = onlyReads(spec.rw);
    this.rateLimit = streamRateLimit(spec.rw, spec.rwmixread, spec.rateBytesPerSec);
    this.iopsLimit = streamRateLimit(spec.rw, spec.rwmixread, spec.rateIops);
  }
}

/** Bytes of private memory one instance needs for its buffers. */
export function instanceBufferBytes(spec: JobInstance): number {
  return spec.iodepth * bufferStride(spec);
}
function bufferStride(spec: JobInstance): number {
  return dataStride(spec) + alignUp(spec.mdBytes, PAGE_SIZE);
}
/** A request's data buffer, with room for any sub-page offset; its metadata buffer follows. */
function dataStride(spec: JobInstance): number {
  return alignUp(spec.maxBs + PAGE_SIZE, PAGE_SIZE);
}

/** Dynamic swiotlb: this thread's handles on guest memory; transient pools come from the atomic pool. */
function dynamicMemory(g: GuestMemoryShared): DynamicMemory {
  const phys = GuestPhysMem.attach(g.phys);
  const arena = DecryptedArena.attach(g.arena);
  // phys: the hybrid policy's synchronous growth takes pages from here (hybrid.ts); unused otherwise.
  return { phys, arena, atomicPool: AtomicPool.attach(g.atomicPool, phys, arena) };
}

export async function runVcpu(task: VcpuTask): Promise<VcpuResult> {
  setTimeScale(task.timeScale);
  const guest = new GuestMemory(task.guest, task.guestBase);
  const words = new Int32Array(task.guest);
  const log = await attachWorkerLogger(task.log, { vcpu: task.cpu });
  const vlog = new VcpuLog(log);
  const lastMapFailure: { msg: string | null } = { msg: null };
  const sink = (e: SwiotlbEvent) => {
    if (e.event === 'map_failure') lastMapFailure.msg = e.msg;
    vlog.swiotlb(e, nowMs());
  };
  const mem = IoTlbMem.attach(task.mem, {
    cpu: task.cpu, guest, events: sink, ...(task.mem.dyn !== undefined ? { memory: dynamicMemory(task.guestMemory) } : {}),
    stats: new Float64Array(task.swiotlbStats, task.cpu * STATS_STRIDE * 8, STATS_FIELDS),
    throttleStats: new ThrottleStats(task.throttleStats, task.cpu * ThrottleStats.bytesNeeded()),
  });
  const nvme = new DmaDevice('nvme0', { minAlignMask: NVME_MIN_ALIGN_MASK });
  const nic = new DmaDevice('eth0');
  // Probe: every device's allocator is io_tlb_default_mem, a restricted one's is its pool's own io_tlb_mem.
  for (const dev of [nvme, nic]) {
    const r = task.restricted.find((x) => x.device === dev.name);
    if (r === undefined) swiotlbDevInit(dev, mem);
    else rmemSwiotlbDeviceInit(dev, attachRestrictedMem(r, task.cpu, { guest, events: sink }));
  }
  const nvmeMax = dmaMaxMappingSize(mem, nvme);
  // [RFC] Probe time: NVMe sets ctrl.blocking when dma_recommend_may_block() says so, and then passes
  // MAY_BLOCK for data and metadata maps. The NIC maps from atomic context and never does.
  const nvmeAttrs = dmaRecommendMayBlock(mem, nvme) ? DMA_ATTR_MAY_BLOCK : 0;
  // [RFC] This thread's count of throttled maps: a request whose maps raised it was throttled.
  const tstat = mem.throttleStats.fields;
  const throttledMaps = () => tstat[TSTAT_HIGH_THROTTLED]! + tstat[TSTAT_LOW_THROTTLED]!;
  const run = new Int32Array(task.run);
  const quiet = new Float64Array(task.quiet);
  const qps = {
    storage: new QueuePair(task.nvmeQueue), net: new QueuePair(task.nicQueue),
    poll: task.nvmePollQueue !== null ? new QueuePair(task.nvmePollQueue) : null,
  };
  const dbs = { storage: new Int32Array(task.nvmeControl), net: new Int32Array(task.nicControl) };
  /** The queue an instance's I/O goes to: a polled storage job's is the poll queue. */
  const queueOf = (spec: JobInstance): QueueKey => (spec.polled ? 'poll' : spec.engine);
  const queue = (key: QueueKey): QueuePair => {
    const qp = key === 'poll' ? qps.poll : qps[key];
    assert(qp !== null, `vcpu${task.cpu}: a polled job has a poll queue`);
    return qp;
  };
  const allStats = new Float64Array(task.instanceStats);

  // Queue slots and private buffers, handed out per instance.
  const runs: InstanceRun[] = [];
  const cidNext = { storage: 0, net: 0, poll: 0 };
  let bufAt = task.guestOffset;
  for (const spec of task.instances) {
    const stride = bufferStride(spec);
    const r = new InstanceRun(spec, cidNext[queueOf(spec)], bufAt, stride,
      allStats.subarray(spec.id * INST_FIELDS, (spec.id + 1) * INST_FIELDS), task.histograms);
    cidNext[queueOf(spec)] += spec.iodepth;
    bufAt += spec.iodepth * stride;
    runs.push(r);
  }
  const owner = {
    storage: new Array<InstanceRun>(qps.storage.depth), net: new Array<InstanceRun>(qps.net.depth),
    poll: new Array<InstanceRun>(qps.poll?.depth ?? 0),
  };
  for (const r of runs) for (let i = 0; i < r.spec.iodepth; i++) owner[queueOf(r.spec)][r.cidBase + i] = r;
  const polledRuns = runs.filter((r) => r.spec.polled);

  // The control plane: answered at the yields below, never from inside the data path.
  let failedMapBackoffMs = DEFAULT_FAILED_MAP_BACKOFF_US / 1000;
  const control: VcpuControlApi = {
    set: (name: string, value: number): number => {
      if (name !== 'failed_map_backoff_us') throw new Error(`vcpu${task.cpu}: no tunable ${name}`);
      const old = failedMapBackoffMs * 1000;
      failedMapBackoffMs = value / 1000;
      return old;
    },
  };
  exposeOnPort(control, task.control);

  const isRead = (r: InstanceRun): boolean => r.onlyReads ?? r.rng.below(100) < r.spec.rwmixread;

  /** Issue one request; false when it failed before reaching the device (I/O error or drop). */
  const submit = (r: InstanceRun, req: Request, cid: number, now: number): boolean => {
    const spec = r.spec;
    // read_iolog: the log's I/O (poll() said it is due); a trim maps its 16-byte range list.
    const act = r.replay !== null ? r.replay.io : null;
    const trim = act !== null && act.op === A_TRIM;
    const read = act !== null ? act.op === A_READ : r.verifying || isRead(r);
    const align = read ? r.readAlign : r.writeAlign;
    // A storage I/O fits its region (fio's io_u_fits); a packet has no region. The verify phase
    // reads back in pieces of the largest whole number of units a write can be.
    const len = act !== null ? (trim ? NVME_DSM_RANGE_BYTES : act.length) : r.verifying
      ? Math.min(Math.max(spec.verifyUnitBytes, maxBlockSize(spec.bs.write) - (maxBlockSize(spec.bs.write) % spec.verifyUnitBytes)), r.writtenHi - r.verifyNext)
      : pickBlockSize(read ? r.readBs : r.writeBs, align, r.rng, spec.engine === 'storage' ? spec.regionBytes : Infinity);
    let off: number;
    if (act !== null) off = r.replay!.deviceOffset() - spec.regionOffset;
    else if (r.verifying) {
      off = r.verifyNext;
      r.verifyNext += len;
    } else if (spec.engine === 'net') off = r.bytesIssued;
    else if (spec.rw === 'randread' || spec.rw === 'randwrite' || spec.rw === 'randrw') {
      const blocks = Math.max(1, Math.floor((spec.regionBytes - len) / align) + 1);
      off = r.rng.below(blocks) * align;
    } else {
      if (r.seqOffset + len > spec.regionBytes) r.seqOffset = 0;
      off = r.seqOffset;
      r.seqOffset += len;
    }
    req.dir = read ? DMA_FROM_DEVICE : DMA_TO_DEVICE;
    req.len = len;
    req.devOffset = spec.regionOffset + off;
    req.startMs = now;
    req.trimBytes = trim ? act.length : 0;
    // write_iolog: every issued I/O, before the map (fio logs at td_io_queue, failures included).
    if (r.wlog !== null) r.wlog.record((now - r.startAt) * 1000, read ? A_READ : A_WRITE, off, len);
    // The plan chose a unit that divides every size and offset of this clone (verifyUnit), so every
    // request of a verifying clone is whole units; the check keeps a broken plan from passing silently.
    req.verifiable = spec.verifyUnitBytes > 0;
    // The message is built only when the check fails: a template per request is work in the I/O path.
    if (req.verifiable && (off % spec.verifyUnitBytes !== 0 || len % spec.verifyUnitBytes !== 0)) {
      assert(false, `vcpu${task.cpu}: job ${spec.name}: a ${len}-byte request at offset ${off} is not whole ${spec.verifyUnitBytes}-byte verify units`);
    }
    r.bytesIssued += act !== null ? act.length : len;

    // The buffer: verifiable sectors for writes, stale bytes for reads (the map copies them anyway).
    const buf = req.bufOffset;
    if (!read && req.verifiable) {
      r.writtenLo = Math.min(r.writtenLo, off);
      r.writtenHi = Math.max(r.writtenHi, off + len);
    }
    if (!read) {
      if (req.verifiable) {
        fillSectors(words, buf >> 2, len / spec.verifyUnitBytes, off / spec.verifyUnitBytes, r.rng.next() | 0, spec.verifyUnitBytes);
      } else {
        fillBytes(guest.bytes, spec.id & 0xff, buf, buf + len);
      }
    }
    const addr = guest.addrOf(buf);
    const dev = spec.engine === 'storage' ? nvme : nic;
    // A storage map that may sleep: ring for what is queued first (see unrung).
    if (spec.engine === 'storage' && nvmeAttrs !== 0) ringPending();
    const throttledBefore = throttledMaps();
    const qp = queue(queueOf(spec));
    const c = cid * CMD_INTS;
    const f = cid * CMD_F64;
    if (spec.engine === 'storage' && len > nvmeMax) {
      const n = req.sgl.fill(addr, len, nvmeMax);
      const rc = dmaMapSgtable(mem, dev, req.sgl, n, req.dir, nvmeAttrs);
      if (rc < 0) return mapFailed(r, req, read);
      req.nents = n;
      for (let e = 0; e < n; e++) {
        qp.cmdf[f + CMDF_SG_ADDR + e] = req.sgl.dmaAddress[e]!;
        qp.cmd[c + CMD_SG_LEN + e] = req.sgl.dmaLength[e]!;
      }
    } else {
      const dma = dmaMapSingle(mem, dev, addr, len, req.dir, spec.engine === 'storage' ? nvmeAttrs : 0);
      if (dma === DMA_MAPPING_ERROR) return mapFailed(r, req, read);
      req.dma = dma;
      req.nents = 1;
      qp.cmdf[f + CMDF_SG_ADDR] = dma;
      qp.cmd[c + CMD_SG_LEN] = len;
    }
    // NVMe maps a separate metadata buffer after the data (nvme_map_metadata); if that fails, the
    // data mapping is undone and the request fails.
    if (spec.mdBytes > 0) {
      const md = dmaMapSingle(mem, dev, guest.addrOf(req.mdOffset), spec.mdBytes, req.dir, nvmeAttrs);
      if (md === DMA_MAPPING_ERROR) {
        unmapData(dev, req);
        return mapFailed(r, req, read);
      }
      req.md = md;
    }
    req.throttled = throttledMaps() !== throttledBefore;
    qp.cmd[c + CMD_OPCODE] = trim ? OP_TRIM : read ? OP_READ : OP_WRITE;
    qp.cmd[c + CMD_NENTS] = req.nents;
    qp.cmd[c + CMD_LEN] = len;
    qp.cmd[c + CMD_STATUS] = -1;
    qp.cmdf[f + CMDF_OFFSET] = req.devOffset;
    qp.cmdf[f + CMDF_SUBMIT_MS] = nowMs(); // the arrival: read now, not at the start of the pass
    const tail = qp.header[QP_SQ_TAIL]!;
    qp.sq[tail % qp.depth] = cid;
    Atomics.store(qp.header, QP_SQ_TAIL, tail + 1);
    req.busy = true;
    r.inflight++;
    return true;
  };

  const mapFailed = (r: InstanceRun, req: Request, read: boolean): false => {
    const spec = r.spec;
    if (spec.engine === 'net') {
      r.stats[I_DROPS]!++;
      vlog.packetDropped({ device: 'eth0', vcpu: task.cpu, size: req.len, dir: read ? 'rx' : 'tx', reason: 'DMA map failed' }, req.startMs);
      return false;
    }
    r.stats[req.trimBytes > 0 ? I_TRIM_ERRORS : read ? I_READ_ERRORS : I_WRITE_ERRORS]!++;
    const why = lastMapFailure.msg ?? 'DMA map failed';
    if (r.firstError === null) r.firstError = why;
    vlog.ioError({ device: 'nvme0', vcpu: task.cpu, op: req.trimBytes > 0 ? 'discard' : read ? 'read' : 'write', offset: req.devOffset, size: req.len, reason: why, phys_seg: Math.ceil(req.len / nvmeMax) }, req.startMs);
    return false;
  };

  const unmapData = (dev: DmaDevice, req: Request): void => {
    if (req.nents > 1) dmaUnmapSg(mem, dev, req.sgl, req.nents, req.dir);
    else dmaUnmapSingle(mem, dev, req.dma, req.len, req.dir);
  };

  // Doorbells: a pass rings each device once for what it submitted, except that before a storage map
  // that may sleep (MAY_BLOCK) the doorbells are rung for what is already queued, as nvme_queue_rq
  // rings per request (fio's default iodepth_batch_submit=1): a command the device was not told about
  // is served only when the device next wakes for another reason (an idle device sleeps until it is
  // rung: never), and a throttle wait behind it would measure that, not the throttle. Invariant,
  // checked in the throttle wait: nothing this thread queued is unrung while it sleeps there.
  const unrung = { storage: false, net: false };
  const ringPending = (): void => {
    if (unrung.storage) ringDoorbell(dbs.storage);
    if (unrung.net) ringDoorbell(dbs.net);
    unrung.storage = false;
    unrung.net = false;
  };

  const verifyCounts: VerifyCounts = { ok: 0, unwritten: 0, bad: 0, firstBad: null };
  const complete = (r: InstanceRun, req: Request, cid: number, qp: QueuePair, now: number): void => {
    const spec = r.spec;
    const status = qp.cmd[cid * CMD_INTS + CMD_STATUS]!;
    const dev = spec.engine === 'storage' ? nvme : nic;
    // Interrupt context: unmap (copy back for reads) and never block.
    unmapData(dev, req);
    if (req.md !== DMA_MAPPING_ERROR) {
      dmaUnmapSingle(mem, dev, req.md, spec.mdBytes, req.dir);
      req.md = DMA_MAPPING_ERROR;
    }
    req.busy = false;
    r.inflight--;
    const read = req.dir === DMA_FROM_DEVICE;
    if (status !== STATUS_OK) {
      r.stats[req.trimBytes > 0 ? I_TRIM_ERRORS : read ? I_READ_ERRORS : I_WRITE_ERRORS]!++;
      if (r.firstError === null) r.firstError = 'device reported a DMA error';
      return;
    }
    if (req.trimBytes > 0) {
      if (now >= r.startAt + spec.rampTimeMs) {
        r.stats[I_TRIM_IOS]!++;
        r.stats[I_TRIM_BYTES]! += req.trimBytes;
      }
      return;
    }
    if (read && req.verifiable) {
      verifyCounts.ok = 0; verifyCounts.unwritten = 0; verifyCounts.bad = 0; verifyCounts.firstBad = null;
      const unit = spec.verifyUnitBytes;
      verifySectors(words, req.bufOffset >> 2, req.len / unit, (req.devOffset - spec.regionOffset) / unit, verifyCounts, unit);
      r.stats[I_VERIFY_OK]! += verifyCounts.ok;
      r.stats[I_UNWRITTEN]! += verifyCounts.unwritten;
      if (verifyCounts.bad > 0) {
        r.stats[I_VERIFY_BAD]! += verifyCounts.bad;
        const msg = `verify: bad data at offset ${req.devOffset}: ${verifyCounts.firstBad}`;
        if (r.firstError === null) r.firstError = msg;
        r.stats[I_READ_ERRORS]!++;
        vlog.ioError({ device: 'nvme0', vcpu: task.cpu, op: 'read', offset: req.devOffset, size: req.len, reason: msg }, now);
        return;
      }
    }
    if (now >= r.startAt + spec.rampTimeMs) {
      const ns = (now - req.startMs) * 1e6;
      if (read) {
        r.stats[I_READ_IOS]!++;
        r.stats[I_READ_BYTES]! += req.len;
        r.readHist.record(ns);
      } else {
        r.stats[I_WRITE_IOS]!++;
        r.stats[I_WRITE_BYTES]! += req.len;
        r.writeHist.record(ns);
      }
      if (spec.engine === 'storage') (req.throttled ? r.throttledHist : r.unthrottledHist).record(ns);
    }
  };

  /** Run the completion handler of every entry posted on a queue; `field` counts them per instance (or -1). */
  const reap = (key: QueueKey, field = -1): number => {
    const qp = queue(key);
    let head = qp.header[QP_CQ_HEAD]!;
    const tail = Atomics.load(qp.header, QP_CQ_TAIL);
    if (head === tail) return 0;
    // The completion time is read after the tail: every entry below was posted before it. The
    // pass's clock (read before the queues) can precede a completion the device posted since, and
    // a latency taken from it would read shorter than the device's own (below --nvme-latency).
    const at = nowMs();
    let n = 0;
    while (head !== tail) {
      const cid = qp.cq[head % qp.depth]!;
      head++;
      const r = owner[key][cid]!;
      complete(r, r.reqs[cid - r.cidBase]!, cid, qp, at);
      if (field >= 0) r.stats[field]!++;
      n++;
    }
    Atomics.store(qp.header, QP_CQ_HEAD, head);
    return n;
  };

  /**
   * The poll loop (io_uring's iopoll, blk_mq_poll -> nvme_poll): each polled clone with I/O in flight
   * polls once, then whatever its poll queue holds is completed here, in this thread. Only the main
   * loop calls it: a thread parked in the throttle wait does not poll.
   */
  const poll = (): number => {
    if (qps.poll === null) return 0;
    let polling = false;
    for (const r of polledRuns) {
      if (r.inflight === 0) continue;
      r.stats[I_POLLS]!++;
      polling = true;
    }
    return polling ? reap('poll', I_POLL_REAPED) : 0;
  };

  // While a storage map sleeps on throttle_sem, interrupt-driven completions are still taken (the
  // kernel's CPU takes interrupts while the task sleeps): reap both interrupt queues; unmap never
  // blocks and never maps. The poll queue is not reaped: it raises no interrupt and its poller is
  // the task that sleeps here (Robin Murphy's stall, polling.ts).
  mem.throttle.whileWaiting = () => {
    assert(!unrung.storage && !unrung.net, `vcpu${task.cpu}: commands queued without a doorbell while the vCPU sleeps in the throttle wait`);
    reap('storage', I_REAPED_IN_WAIT);
    reap('net', I_REAPED_IN_WAIT);
  };

  const groupStarted = (g: number): boolean => {
    for (let k = 0; k < g; k++) if (Atomics.load(run, RUN_GROUP_DONE + k) < task.groupSizes[k]!) return false;
    return true;
  };

  let active = runs.length;
  /** Storage instances not finished: while there are any, the vCPU parks on the storage queue's interrupt. */
  let activeStorage = runs.filter((r) => r.spec.engine === 'storage').length;
  const tracer = task.dmaTrace !== undefined ? new DmaTracer(task.dmaTrace) : null;
  setDmaTracer(tracer);
  await startBarrier(run);
  if (task.replay !== undefined) {
    await runReplayVcpu({ cpu: task.cpu, task: task.replay, mem, guest, run, stopIndex: RUN_STOP, quiet });
    setDmaTracer(null);
    tracer?.close();
    log.close();
    task.control.close();
    return { cpu: task.cpu, firstErrors: {}, logged: vlog.logged, suppressed: vlog.suppressed };
  }
  // Yields, parks and the fault are host time (wall); the workload runs on the run's clock (now).
  const k = timeScale();
  const faultAt = task.faultAtMs === undefined ? Infinity : wallMs() + task.faultAtMs;
  let lastYield = wallMs();
  // fio's genesis for a v2 log's waits: the start of the run.
  const genesis = wallMs() / k;
  const irqSeen = { storage: 0, net: 0, poll: 0 };
  while (active > 0) {
    const wall = wallMs();
    const now = wall / k;
    const stop = Atomics.load(run, RUN_STOP) !== 0;
    if (wall >= faultAt) throw new Error(`vcpu${task.cpu}: injected fault (--inject-fault) after ${task.faultAtMs} ms`);
    // The interrupt words, read before the queues are: a completion posted after this read wakes
    // the idle wait below (its word no longer holds what was read), one posted before it is reaped.
    irqSeen.storage = Atomics.load(qps.storage.header, QP_CQ_IRQ);
    irqSeen.net = Atomics.load(qps.net.header, QP_CQ_IRQ);
    irqSeen.poll = qps.poll === null ? 0 : Atomics.load(qps.poll.header, QP_CQ_IRQ);
    let progressed = reap('storage') + reap('net') + poll();
    let nextWake = now + MAX_PARK_MS / k;
    for (const r of runs) {
      if (r.finished) continue;
      const spec = r.spec;
      if (!r.started) {
        if (stop) { finish(r, now); continue; }
        if (!groupStarted(spec.group)) continue;
        r.started = true;
        r.startAt = now + spec.startdelayMs;
        r.nextSubmitAt = r.startAt;
        // As in fio, ramp_time is lead-in: it adds to the runtime, and the statistics (the job's
        // runtime included) start when it ends.
        r.endAt = r.startAt + spec.rampTimeMs + spec.runtimeMs;
        r.stats[I_START_MS] = r.startAt + spec.rampTimeMs;
        if (spec.iolog !== undefined) r.replay = new IologReplay(spec.iolog, genesis);
        if (spec.writeIolog !== undefined) {
          r.wlog = new IologRecorder(spec.id, task.iolog!);
          r.wlog.record(0, A_OPEN, 0, 0);
        }
      }
      if (r.verifying) {
        if (stop || r.verifyNext >= r.writtenHi) {
          if (r.inflight === 0) finish(r, now);
          continue;
        }
      } else if (stop || now >= r.endAt || (!spec.timeBased && r.bytesIssued >= spec.ioLimitBytes) || r.replay?.done === true) {
        if (r.inflight > 0) continue;
        // fio's verify phase (do_verify): once every write has completed, read back what was written.
        if (stop || !spec.verifyPhase || r.writtenHi <= r.writtenLo) {
          finish(r, now);
          continue;
        }
        r.verifying = true;
        r.verifyNext = r.writtenLo;
        r.nextSubmitAt = now;
        r.stats[I_VERIFY_START_MS] = now;
      }
      // A replay is ready when the log's next I/O is due (poll takes the file actions, waits and syncs before it).
      const rp = r.replay;
      const more = (): boolean => (rp !== null ? rp.poll(now) <= now : r.verifying ? r.verifyNext < r.writtenHi : spec.timeBased || r.bytesIssued < spec.ioLimitBytes);
      // At most iodepth submissions per instance a pass: a storage map that sleeps on throttle_sem
      // takes completions meanwhile (whileWaiting), so inflight can stay below iodepth for ever and,
      // without a bound, the pass never looked at the clock again (a time_based job ran on past its
      // runtime, its maps admitted one by one; seen with jobs/md-deadlock.fio on 2 vCPUs).
      for (let budget = spec.iodepth; budget > 0 && r.inflight < spec.iodepth && now >= r.nextSubmitAt && more(); budget--) {
        let i = 0;
        while (r.reqs[i]!.busy) i++;
        const before = r.bytesIssued;
        // A failed map frees nothing by itself: back off and reap completions before trying again,
        // so that a full pool does not turn into a busy loop that starves the other vCPUs.
        const ok = submit(r, r.reqs[i]!, r.cidBase + i, now);
        rp?.issued(now);
        if (!ok) {
          r.nextSubmitAt = now + failedMapBackoffMs;
          r.backingOff = true;
          break;
        }
        r.backingOff = false;
        progressed++;
        unrung[spec.engine] = true;
        const len = r.bytesIssued - before;
        // Both limits given: the I/O waits for the stricter one, not for the two in turn.
        const spacingMs = Math.max(r.rateLimit !== undefined ? (len / r.rateLimit) * 1000 : 0, r.iopsLimit !== undefined ? 1000 / r.iopsLimit : 0);
        if (r.verifying) continue; // the verify phase reads at full speed, without rate or thinktime
        if (spacingMs > 0) r.nextSubmitAt = Math.max(r.nextSubmitAt, now) + spacingMs;
        if (spec.thinktimeUs > 0) r.nextSubmitAt = Math.max(r.nextSubmitAt, now + spec.thinktimeUs / 1000);
      }
      // A replay waiting for its next I/O's time, with a slot free: that time is this clone's next submission.
      if (rp !== null && !rp.done && r.inflight < spec.iodepth && now >= r.nextSubmitAt) {
        const due = rp.poll(now);
        if (due > now && Number.isFinite(due)) r.nextSubmitAt = due;
      }
      if (r.nextSubmitAt > now) nextWake = Math.min(nextWake, r.nextSubmitAt);
    }
    ringPending();
    publishQuiet(now);

    if (wall - lastYield >= YIELD_EVERY_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = wallMs();
    }
    if (progressed > 0 || active === 0) continue;
    idle(nextWake);
  }
  quiet[task.cpu] = Infinity;
  setDmaTracer(null);
  tracer?.close();
  log.close();
  task.control.close();
  const firstErrors: Record<number, string> = {};
  for (const r of runs) if (r.firstError !== null) firstErrors[r.spec.id] = r.firstError;
  return { cpu: task.cpu, firstErrors, logged: vlog.logged, suppressed: vlog.suppressed };

  /** Until when no I/O of this vCPU is expected (see QUIET_NONE); written only when it changes. */
  function publishQuiet(now: number): void {
    let until = Infinity;
    for (const r of runs) {
      if (r.finished || !r.started) continue; // not started: waits for an earlier group, whose I/O is watched
      if (r.inflight > 0 || r.backingOff || r.nextSubmitAt <= now) {
        until = QUIET_NONE;
        break;
      }
      until = Math.min(until, r.nextSubmitAt);
    }
    if (quiet[task.cpu] !== until) quiet[task.cpu] = until;
  }

  function finish(r: InstanceRun, now: number): void {
    r.finished = true;
    if (r.replay !== null) {
      r.stats[I_SYNCS] = r.replay.syncs;
      r.stats[I_FILE_ACTIONS] = r.replay.fileActions;
      r.replay.close();
    }
    if (r.wlog !== null) {
      r.wlog.close((now - r.startAt) * 1000);
    }
    r.stats[I_END_MS] = now;
    if (!r.started || r.stats[I_START_MS]! > now) r.stats[I_START_MS] = now; // never started, or ended in the ramp
    active--;
    if (r.spec.engine === 'storage') activeStorage--;
    Atomics.add(run, RUN_GROUP_DONE + r.spec.group, 1);
    Atomics.notify(run, RUN_GROUP_DONE + r.spec.group);
  }

  /**
   * Wait for an interrupt: park on one CQ_IRQ word (storage first), expecting the value read at the
   * start of the pass, before its queues were reaped: a completion posted since then makes the wait
   * return at once, or (QP_VCPU_PARKED) notifies it. With polled I/O in flight it parks on the poll
   * queue's word, which stands in for spinning on it (polling.ts). No spin first: a 50-load spin
   * (2-3 us) caught a completion in 4 of 7,166 idle waits of a 4-vCPU jobs/randrw-4k.fio run.
   */
  function idle(until: number): void {
    const wait = Math.min((until - nowMs()) * timeScale(), MAX_PARK_MS);
    if (wait <= 0) return;
    const usePoll = qps.poll !== null && polledRuns.some((r) => r.inflight > 0);
    const useNet = !usePoll && activeStorage === 0;
    const h = usePoll ? qps.poll!.header : useNet ? qps.net.header : qps.storage.header;
    Atomics.store(h, QP_VCPU_PARKED, 1);
    Atomics.wait(h, QP_CQ_IRQ, usePoll ? irqSeen.poll : useNet ? irqSeen.net : irqSeen.storage, wait);
    Atomics.store(h, QP_VCPU_PARKED, 0);
  }
}

/** Count this vCPU in at the start barrier and park until the main thread says go (or stop). */
async function startBarrier(run: Int32Array): Promise<void> {
  Atomics.add(run, RUN_READY, 1);
  Atomics.notify(run, RUN_READY);
  // Parks in short slices, yielding between them so that control-plane calls are still answered.
  while (Atomics.load(run, RUN_GO) === 0 && Atomics.load(run, RUN_STOP) === 0) {
    Atomics.wait(run, RUN_GO, 0, BARRIER_PARK_MS);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
