// [RFC] Thread bodies for the throttling tests and the stress harness (workers/throttle.ts runs them).
//
// Two kinds:
//   - script: a fixed list of steps (map, unmap, wait for a control word or a queue length, take a
//     ticket), so that a test can line threads up in a known order on throttle_sem and record the
//     order in which they are admitted. Every wait is bounded: a step that times out throws, and the
//     test fails instead of hanging.
//   - slop: rounds of one map + unmap each, all threads released together by a shared barrier word,
//     to provoke the accepted overshoot of §15.9 and measure it against the design's bound.
import { DmaDevice } from '../dma/device.js';
import { GuestMemory } from '../memory/guest.js';
import { DMA_ATTR_MAY_BLOCK, DMA_MAPPING_ERROR, DMA_TO_DEVICE } from './constants.js';
import { IoTlbMem, type IoTlbMemShared, type SwiotlbEvent } from './mem.js';
import { ThrottleStats } from './throttle.js';

/** One step of a scripted thread. */
export type ThrottleStep =
  /** Map `size` bytes (TO_DEVICE) with or without DMA_ATTR_MAY_BLOCK and remember it as `key`. */
  | { op: 'map'; key: string; size: number; mayBlock: boolean }
  /** Unmap the mapping remembered as `key`. */
  | { op: 'unmap'; key: string }
  /** Wait until control[index] >= atLeast. */
  | { op: 'waitControl'; index: number; atLeast: number }
  /** Wait until throttle_sem has at least `atLeast` waiters. */
  | { op: 'waitQueueLen'; atLeast: number }
  /** control[index] += 1, waking anyone parked on it. */
  | { op: 'addControl'; index: number }
  /** Take the next ticket from control[index] and record it as `key` (admission order). */
  | { op: 'ticket'; index: number; key: string };

export interface ThrottleStatsRef {
  sab: SharedArrayBuffer;
  byteOffset: number;
}

interface ThreadCommon {
  shared: IoTlbMemShared;
  guest: SharedArrayBuffer;
  guestBase: number;
  /** This thread's private buffers start here in `guest`. */
  regionOffset: number;
  cpu: number;
  device: string;
  /** Int32 control words shared with the test. */
  control: SharedArrayBuffer;
  /** This thread's throttle statistics block. */
  stats: ThrottleStatsRef;
  /** Bound on every wait for a condition. */
  timeoutMs: number;
}

export interface ThrottleScriptConfig extends ThreadCommon {
  kind: 'script';
  steps: ThrottleStep[];
}

export interface ThrottleSlopConfig extends ThreadCommon {
  kind: 'slop';
  /** Bytes per map. */
  size: number;
  mayBlock: boolean;
  /** Map + unmap pairs per round. */
  pairsPerRound: number;
  /** control[roundIndex]: the round to run (the barrier); SLOP_STOP ends the thread. */
  roundIndex: number;
  /** control[doneIndex] += 1 after each round's unmap. */
  doneIndex: number;
}

export type ThrottleWorkerConfig = ThrottleScriptConfig | ThrottleSlopConfig;

export const SLOP_STOP = -1;

export interface ThrottleMapOutcome {
  key: string;
  ok: boolean;
  /** io_tlb_used right after the map returned. */
  usedAfter: number;
  /** io_tlb_used at the moment this request was granted throttle_sem by up(), if it waited. */
  usedAtGrant: number | null;
}

export interface ThrottleWorkerResult {
  cpu: number;
  maps: ThrottleMapOutcome[];
  tickets: Record<string, number>;
  events: SwiotlbEvent[];
  mapFailures: number;
  rounds: number;
}

export function runThrottleWorker(cfg: ThrottleWorkerConfig): ThrottleWorkerResult {
  return cfg.kind === 'script' ? runScript(cfg) : runSlop(cfg);
}

function attach(cfg: ThreadCommon, events: SwiotlbEvent[]): { mem: IoTlbMem; guest: GuestMemory; dev: DmaDevice } {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const mem = IoTlbMem.attach(cfg.shared, {
    cpu: cfg.cpu, guest, events: (e) => events.push(e), throttleStats: new ThrottleStats(cfg.stats.sab, cfg.stats.byteOffset),
  });
  return { mem, guest, dev: new DmaDevice(cfg.device) };
}

/** Park for about 1 ms (on a private word: nobody notifies it). */
const napWord = new Int32Array(new SharedArrayBuffer(4));
function nap(): void {
  Atomics.wait(napWord, 0, 0, 1);
}

function waitUntil(what: string, ok: () => boolean, timeoutMs: number): void {
  const deadline = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`throttle worker: timed out after ${timeoutMs} ms waiting for ${what}`);
    nap();
  }
}

function runScript(cfg: ThrottleScriptConfig): ThrottleWorkerResult {
  const events: SwiotlbEvent[] = [];
  const { mem, guest, dev } = attach(cfg, events);
  const control = new Int32Array(cfg.control);
  const res: ThrottleWorkerResult = { cpu: cfg.cpu, maps: [], tickets: {}, events, mapFailures: 0, rounds: 0 };
  const live = new Map<string, { tlb: number; size: number }>();
  let usedAtGrant: number | null = null;
  mem.throttle.onGranted = () => {
    usedAtGrant = mem.memUsed();
  };
  let bufAt = cfg.regionOffset;
  for (const step of cfg.steps) {
    switch (step.op) {
      case 'map': {
        usedAtGrant = null;
        const tlb = mem.tblMapSingle(dev, guest.addrOf(bufAt), step.size, 0, DMA_TO_DEVICE, step.mayBlock ? DMA_ATTR_MAY_BLOCK : 0);
        const ok = tlb !== DMA_MAPPING_ERROR;
        res.maps.push({ key: step.key, ok, usedAfter: mem.memUsed(), usedAtGrant });
        if (ok) live.set(step.key, { tlb, size: step.size });
        else res.mapFailures++;
        bufAt += step.size;
        break;
      }
      case 'unmap': {
        const m = live.get(step.key);
        if (m === undefined) break; // its map failed: nothing to release
        mem.tblUnmapSingle(dev, m.tlb, m.size, DMA_TO_DEVICE, 0);
        live.delete(step.key);
        break;
      }
      case 'waitControl':
        waitUntil(`control[${step.index}] >= ${step.atLeast}`, () => Atomics.load(control, step.index) >= step.atLeast, cfg.timeoutMs);
        break;
      case 'waitQueueLen':
        waitUntil(`${step.atLeast} throttle waiters`, () => mem.throttle.queueLength() >= step.atLeast, cfg.timeoutMs);
        break;
      case 'addControl':
        Atomics.add(control, step.index, 1);
        Atomics.notify(control, step.index);
        break;
      case 'ticket':
        res.tickets[step.key] = Atomics.add(control, step.index, 1);
        break;
    }
  }
  for (const [, m] of live) mem.tblUnmapSingle(dev, m.tlb, m.size, DMA_TO_DEVICE, 0);
  return res;
}

function runSlop(cfg: ThrottleSlopConfig): ThrottleWorkerResult {
  const events: SwiotlbEvent[] = [];
  const { mem, guest, dev } = attach(cfg, events);
  const control = new Int32Array(cfg.control);
  const res: ThrottleWorkerResult = { cpu: cfg.cpu, maps: [], tickets: {}, events, mapFailures: 0, rounds: 0 };
  const orig = guest.addrOf(cfg.regionOffset);
  const attrs = cfg.mayBlock ? DMA_ATTR_MAY_BLOCK : 0;
  for (let round = 1; ; round++) {
    // The barrier: every thread parks on the round word and the test wakes them all at once.
    const deadline = performance.now() + cfg.timeoutMs;
    let r = Atomics.load(control, cfg.roundIndex);
    while (r !== SLOP_STOP && r < round) {
      if (performance.now() > deadline) throw new Error(`throttle worker: round ${round} did not start within ${cfg.timeoutMs} ms`);
      Atomics.wait(control, cfg.roundIndex, r, 50);
      r = Atomics.load(control, cfg.roundIndex);
    }
    if (r === SLOP_STOP) break;
    for (let k = 0; k < cfg.pairsPerRound; k++) {
      const tlb = mem.tblMapSingle(dev, orig, cfg.size, 0, DMA_TO_DEVICE, attrs);
      // Unmap at once: a throttled request holds throttle_sem until then, and the others queue behind it.
      if (tlb === DMA_MAPPING_ERROR) res.mapFailures++;
      else mem.tblUnmapSingle(dev, tlb, cfg.size, DMA_TO_DEVICE, 0);
    }
    res.rounds++;
    Atomics.add(control, cfg.doneIndex, 1);
    Atomics.notify(control, cfg.doneIndex);
  }
  return res;
}
