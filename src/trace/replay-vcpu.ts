// A replaying vCPU: instead of fio jobs, this thread performs the trace's DMA calls of its trace CPU
// (those the feeder put in its ring, replay-ring.ts) at their trace times, through the same
// dma-direct calls a driver makes (dmaMapSingle, dmaMapSgtable, dmaUnmapSingle, dmaUnmapSg) on the
// VM's shared allocator. Each device of the trace is a DmaDevice of its name and min_align_mask.
//
// Time: the first vCPU past the start barrier stamps the replay's start (the shared START word);
// an operation at trace time t runs at start + (t - first_us) / speed on the run's clock, or as soon
// as it is reached when that is past (counted late when more than LATE_MS past).
//
// Memory: the original buffers are one scratch region per vCPU (the largest mapping plus a page),
// at each mapping's traced page offset, so that swiotlb_align_offset sees the traced alignment. The
// bytes copied are meaningless; sharing the region between live mappings changes no slot.
//
// Unmaps run on the vCPU that made the mapping (the feeder routes them there), at the unmap's time;
// the slots released are the mapping's whatever CPU frees them. While a MAY_BLOCK map waits on
// throttle_sem ([RFC]), the vCPU performs the unmaps already due further on in its ring (as a CPU
// takes completions while its task sleeps) and marks them done; it never maps out of order.
import { DmaDevice } from '../dma/device.js';
import { ScatterList, dmaMapSgtable, dmaMapSingle, dmaUnmapSg, dmaUnmapSingle } from '../dma/direct.js';
import type { GuestMemory } from '../memory/guest.js';
import { DMA_MAPPING_ERROR, type DmaDirection } from '../swiotlb/constants.js';
import type { IoTlbMem } from '../swiotlb/mem.js';
import { nowMs, timeScale, wallMs } from '../util/clock.js';
import {
  OP_DONE, OP_MAP, OP_MAP_SG, OP_UNMAP, REC_ATTRS, REC_DEV, REC_DIR, REC_HEADER, REC_ID, REC_N, REC_OP, REC_T_US,
  ReplayRingReader, recordWords,
} from './replay-ring.js';

/** What a replaying vCPU gets in its task (plain data). */
export interface ReplayVcpuTask {
  ring: SharedArrayBuffer;
  /** Shared by every replaying vCPU: the start stamp (START_* below) and each vCPU's results. */
  shared: SharedArrayBuffer;
  devices: { name: string; minAlignMask: number }[];
  firstUs: number;
  lastUs: number;
  speed: number;
  /** The scratch region's offset in the vCPU's guest memory, and its size. */
  scratchOffset: number;
  scratchBytes: number;
}

// The shared region: Int32 [START_CLAIM, START_SET], then Float64 START_MS at byte 8, then per vCPU
// RESULT_FIELDS Float64 results at byte RESULTS_BYTE + cpu * RESULT_FIELDS * 8 (written by that vCPU only).
const START_CLAIM = 0;
const START_SET = 1;
const START_MS_BYTE = 8;
const RESULTS_BYTE = 16;
export const RS_OPS = 0;
export const RS_MAPS_OK = 1;
export const RS_MAPS_FAILED = 2;
export const RS_SG_OK = 3;
export const RS_SG_FAILED = 4;
export const RS_UNMAPS = 5;
/** Unmaps of a mapping whose map failed in the replay: skipped. */
export const RS_UNMAPS_SKIPPED = 6;
/** Mappings still live when the trace ended: released then. */
export const RS_HELD_TO_END = 7;
export const RS_LATE = 8;
export const RS_LATE_MAX_MS = 9;
/** Unmaps performed ahead of their place in the ring while a map waited on throttle_sem. */
export const RS_EARLY_UNMAPS = 10;
export const RS_LIVE_PEAK = 11;
export const RESULT_FIELDS = 12;

export function replaySharedBytes(vcpus: number): number {
  return RESULTS_BYTE + vcpus * RESULT_FIELDS * 8;
}

export function replayResults(shared: SharedArrayBuffer, cpu: number): Float64Array {
  return new Float64Array(shared, RESULTS_BYTE + cpu * RESULT_FIELDS * 8, RESULT_FIELDS);
}

/** An operation this far past its time counts as late. */
const LATE_MS = 1;
const YIELD_EVERY_MS = 10;
const MAX_PARK_MS = 5;

export interface ReplayVcpuContext {
  cpu: number;
  task: ReplayVcpuTask;
  mem: IoTlbMem;
  guest: GuestMemory;
  /** The run control block (RUN_STOP at index `stopIndex`). */
  run: Int32Array;
  stopIndex: number;
  /** The stall watchdog's word of this vCPU (vcpu.ts QUIET_NONE): until when it expects no I/O. */
  quiet: Float64Array;
}

interface LiveMapping {
  dev: DmaDevice;
  dir: DmaDirection;
  /** Single map: the DMA address and size; SG: the list. */
  dma: number;
  size: number;
  sgl: ScatterList | null;
  nents: number;
}

export async function runReplayVcpu(c: ReplayVcpuContext): Promise<void> {
  const { task, mem, cpu } = c;
  const reader = new ReplayRingReader(task.ring);
  const devs = task.devices.map((d) => new DmaDevice(d.name, { minAlignMask: d.minAlignMask }));
  const base = c.guest.addrOf(task.scratchOffset);
  const res = replayResults(task.shared, cpu);
  const ctl = new Int32Array(task.shared, 0, 2);
  const startMs = new Float64Array(task.shared, START_MS_BYTE, 1);
  const park = new Int32Array(new SharedArrayBuffer(4));
  const live = new Map<number, LiveMapping>();
  const k = timeScale();

  // One start for every vCPU: the first one here stamps it.
  if (Atomics.compareExchange(ctl, START_CLAIM, 0, 1) === 0) {
    startMs[0] = nowMs();
    Atomics.store(ctl, START_SET, 1);
    Atomics.notify(ctl, START_SET);
  } else {
    while (Atomics.load(ctl, START_SET) === 0) Atomics.wait(ctl, START_SET, 0, 5);
  }
  const start = startMs[0]!;
  const dueMs = (tUs: number): number => start + (tUs - task.firstUs) / 1000 / task.speed;

  const unmap = (pos: number): void => {
    const id = reader.word(pos, REC_ID);
    const m = live.get(id);
    if (m === undefined) {
      res[RS_UNMAPS_SKIPPED]!++;
      return;
    }
    live.delete(id);
    const attrs = reader.word(pos, REC_ATTRS);
    if (m.sgl !== null) dmaUnmapSg(mem, m.dev, m.sgl, m.nents, m.dir, attrs);
    else dmaUnmapSingle(mem, m.dev, m.dma, m.size, m.dir, attrs);
    res[RS_UNMAPS]!++;
  };

  // [RFC] While a map sleeps on throttle_sem: the unmaps due by now further on in the ring.
  let current = 0;
  mem.throttle.whileWaiting = () => {
    const now = nowMs();
    const end = (reader.tail() + reader.available()) | 0;
    let pos = (current + recordWords(reader, current)) | 0;
    while (((end - pos) | 0) > 0) {
      const len = recordWords(reader, pos);
      if (reader.word(pos, REC_OP) === OP_UNMAP && dueMs(reader.word(pos, REC_T_US)) <= now && live.has(reader.word(pos, REC_ID))) {
        unmap(pos);
        reader.markDone(pos);
        res[RS_EARLY_UNMAPS]!++;
      }
      pos = (pos + len) | 0;
    }
  };

  const map = (pos: number, op: number): void => {
    const id = reader.word(pos, REC_ID);
    const dev = devs[reader.word(pos, REC_DEV)]!;
    const dir = reader.word(pos, REC_DIR) as DmaDirection;
    const attrs = reader.word(pos, REC_ATTRS);
    const n = reader.word(pos, REC_N);
    if (op === OP_MAP) {
      const size = reader.word(pos, REC_HEADER);
      const dma = dmaMapSingle(mem, dev, base + reader.word(pos, REC_HEADER + 1), size, dir, attrs);
      if (dma === DMA_MAPPING_ERROR) {
        res[RS_MAPS_FAILED]!++;
        return;
      }
      live.set(id, { dev, dir, dma, size, sgl: null, nents: 1 });
      res[RS_MAPS_OK]!++;
    } else {
      const sgl = new ScatterList(n);
      for (let i = 0; i < n; i++) sgl.set(i, base + reader.word(pos, REC_HEADER + 2 * i + 1), reader.word(pos, REC_HEADER + 2 * i));
      if (dmaMapSgtable(mem, dev, sgl, n, dir, attrs) < 0) {
        res[RS_SG_FAILED]!++;
        return;
      }
      live.set(id, { dev, dir, dma: DMA_MAPPING_ERROR, size: 0, sgl, nents: n });
      res[RS_SG_OK]!++;
    }
    if (live.size > res[RS_LIVE_PEAK]!) res[RS_LIVE_PEAK] = live.size;
  };

  let lastYield = wallMs();
  const maybeYield = async (): Promise<void> => {
    if (wallMs() - lastYield < YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    lastYield = wallMs();
  };
  const stopped = (): boolean => Atomics.load(c.run, c.stopIndex) !== 0;
  /** Park until run time `until` (bounded slices), or stop. */
  const waitUntil = (until: number): void => {
    const ms = (until - nowMs()) * k;
    if (ms > 0) Atomics.wait(park, 0, 0, Math.min(ms, MAX_PARK_MS));
  };

  while (!stopped()) {
    if (reader.available() === 0) {
      if (reader.ended()) break;
      c.quiet[cpu] = Infinity; // waiting for the feeder, not for a device
      reader.waitForData(MAX_PARK_MS);
      await maybeYield();
      continue;
    }
    const pos = reader.tail();
    const op = reader.word(pos, REC_OP);
    const len = recordWords(reader, pos);
    if (op === OP_DONE) {
      reader.consume(len);
      continue;
    }
    const due = dueMs(reader.word(pos, REC_T_US));
    const now = nowMs();
    if (now < due) {
      c.quiet[cpu] = due;
      waitUntil(due);
      await maybeYield();
      continue;
    }
    const late = now - due;
    if (late > LATE_MS) res[RS_LATE]!++;
    if (late > res[RS_LATE_MAX_MS]!) res[RS_LATE_MAX_MS] = late;
    c.quiet[cpu] = 0; // QUIET_NONE: a map may wait on throttle_sem
    current = pos;
    if (op === OP_UNMAP) unmap(pos);
    else if (op === OP_MAP || op === OP_MAP_SG) map(pos, op);
    res[RS_OPS]!++;
    reader.consume(len);
    await maybeYield();
  }
  // Mappings whose unmap never came are held to the end of the trace, then released.
  if (!stopped()) {
    const end = dueMs(task.lastUs);
    c.quiet[cpu] = end;
    while (!stopped() && nowMs() < end) {
      waitUntil(end);
      await maybeYield();
    }
  }
  res[RS_HELD_TO_END] = live.size;
  for (const [, m] of live) {
    if (m.sgl !== null) dmaUnmapSg(mem, m.dev, m.sgl, m.nents, m.dir);
    else dmaUnmapSingle(mem, m.dev, m.dma, m.size, m.dir);
  }
  live.clear();
  c.quiet[cpu] = Infinity;
}
