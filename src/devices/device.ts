// An emulated device on its own thread (the host side). It is given only shared memory: the swiotlb
// bounce region (decrypted, so the host may touch it), the queue pairs and its own backing store.
// It never receives private guest memory or the swiotlb slot metadata (which, in a real CoCo guest,
// lives in private memory too).
//
// Service model: commands are served in arrival order (their submission time, CMDF_SUBMIT_MS)
// through one channel of `bandwidth` bytes/s, and each completes `latency` after its transfer ends;
// times are the run's clock (src/util/clock.ts: emulated time, --time-scale). Completions are
// batched: all commands due by now are posted, then each affected vCPU gets one interrupt.
//
// The thread never spins: it reads the clock once per pass, posts what is due, and sleeps
// (Atomics.wait on its doorbell word) until the next completion is due. It asks for a doorbell
// (DEV_PARKED) only when a command submitted now could complete before the next one it holds, so a
// busy device is not woken by every submission, and an idle one sleeps until one arrives: its CPU
// use is proportional to the commands it serves (DEV_PASSES counts its passes).
import type { MessagePort } from 'node:worker_threads';
import { assert } from '../errors.js';
import { exposeOnPort } from '../util/comlink.js';
import { setTimeScale, threadCpuMs, wallMs } from '../util/clock.js';
import type { DeviceControlApi } from '../vm/control.js';
import { BounceWindow, type BounceWindowShared } from '../swiotlb/dynamic.js';
import { BackingStore } from './store.js';
import { fillBytes } from '../util/bytes.js';
import {
  CMD_F64, CMD_INTS, CMD_LEN, CMD_NENTS, CMD_OPCODE, CMD_SG_LEN, CMD_STATUS, CMDF_OFFSET, CMDF_SG_ADDR,
  CMDF_SUBMIT_MS, DEV_COMMANDS, DEV_DOORBELL, DEV_PARKED, DEV_PASSES, DEV_STOP, OP_READ, OP_TRIM, OP_WRITE, QP_CQ_IRQ, QP_CQ_TAIL, QP_SQ_HEAD, QP_SQ_TAIL,
  QP_VCPU_PARKED, QueuePair, STATUS_ERROR, STATUS_OK,
} from './queue.js';

export type DeviceKind = 'nvme' | 'nic';

export interface DeviceConfig {
  kind: DeviceKind;
  name: string;
  /** The swiotlb's shared memory: the default pool's data and bus address, and with dynamic swiotlb the pools added later (dynamic.ts BounceWindow). */
  bounce: BounceWindowShared;
  /** One queue pair per vCPU. */
  queues: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  latencyUs: number;
  bandwidthBytesPerSec: number;
  /** Backing store size (storage); 0 for the NIC. */
  capacityBytes: number;
  /** The control plane's port (transferred): this thread serves DeviceControlApi on it. */
  controlPort?: MessagePort;
  /** Fault injection (--inject-fault): throw this long (wall time) after the device starts. */
  faultAtMs?: number;
  /** --time-scale K: the run's clock runs K times slower than the wall (default 1). */
  timeScale?: number;
}

export interface DeviceResult {
  commands: number;
  /** Passes of the device loop (DEV_PASSES). */
  passes: number;
  /** This thread's own CPU time from its start to its end (threadCpuMs), null where the host has no per-thread figure. */
  cpuMs: number | null;
  /** Wall time from its start to its end. */
  lifeMs: number;
}

/** Longest park (wall ms) before re-checking the stop flag. */
const MAX_PARK_MS = 20;
/** How often (wall ms) the device loop yields to its event loop, where control-plane calls are answered. */
const YIELD_EVERY_MS = 10;

export async function runDevice(cfg: DeviceConfig): Promise<DeviceResult> {
  const born = wallMs();
  const cpu0 = threadCpuMs();
  const k = cfg.timeScale ?? 1;
  setTimeScale(k);
  const window = new BounceWindow(cfg.bounce);
  const store = cfg.capacityBytes > 0 ? new BackingStore(cfg.capacityBytes) : null;
  const qps = cfg.queues.map((q) => new QueuePair(q));
  const control = new Int32Array(cfg.control);
  // The service model's tunables: read at every command, changed over the control plane.
  let bwPerMs = cfg.bandwidthBytesPerSec / 1000;
  let latencyMs = cfg.latencyUs / 1000;
  // Pending commands: a ring of parallel arrays (from `head`, `npending` long) sorted by completion
  // time; at most the sum of the queue depths.
  const cap = qps.reduce((s, q) => s + q.depth, 0);
  const dueAt = new Float64Array(cap);
  const dueQ = new Int32Array(cap);
  const dueCid = new Int32Array(cap);
  let head = 0;
  let npending = 0;
  // Commands taken in one pass, sorted by submission time before they enter the channel.
  const inAt = new Float64Array(cap);
  const inQ = new Int32Array(cap);
  const inCid = new Int32Array(cap);
  let busyUntil = 0;
  let commands = 0;
  let passes = 0;
  const irq = new Uint8Array(qps.length);

  const transfer = (qp: QueuePair, cid: number): number => {
    const c = cid * CMD_INTS;
    const f = cid * CMD_F64;
    const op = qp.cmd[c + CMD_OPCODE]!;
    let devOff = qp.cmdf[f + CMDF_OFFSET]!;
    const nents = qp.cmd[c + CMD_NENTS]!;
    for (let e = 0; e < nents; e++) {
      const addr = qp.cmdf[f + CMDF_SG_ADDR + e]!;
      const len = qp.cmd[c + CMD_SG_LEN + e]!;
      // The device can reach only the shared bounce regions: anything else is a DMA error.
      const b = window.resolve(addr, len);
      if (b < 0) return STATUS_ERROR;
      const bounce = window.region;
      // A deallocate reads its range list (fetched above: the address must be in a bounce region); the blocks keep their data.
      if (op === OP_TRIM) continue;
      if (store !== null) {
        if (!store.fits(devOff, len)) return STATUS_ERROR;
        if (op === OP_WRITE) store.write(bounce, b, devOff, len);
        else store.read(bounce, b, devOff, len);
      } else if (op === OP_READ) {
        // A received packet: a recognisable pattern from the queue and offset.
        fillBytes(bounce.bytes, (devOff + e) & 0xff, b, b + len);
      }
      devOff += len;
    }
    return STATUS_OK;
  };

  const api: DeviceControlApi = {
    get: (name) => {
      if (name === 'latency_us') return latencyMs * 1000;
      if (name === 'bandwidth_bytes_per_s') return bwPerMs * 1000;
      throw new Error(`${cfg.name}: no tunable ${name}`);
    },
    set: (name, value) => {
      const old = api.get(name);
      assert(Number.isFinite(value) && value >= 0, 'device tunables are validated by the control plane');
      if (name === 'latency_us') latencyMs = value / 1000;
      else bwPerMs = Math.max(1, value) / 1000;
      return old;
    },
  };
  if (cfg.controlPort !== undefined) exposeOnPort(api, cfg.controlPort);
  const faultAt = cfg.faultAtMs === undefined ? Infinity : wallMs() + cfg.faultAtMs;
  let lastYield = wallMs();

  while (Atomics.load(control, DEV_STOP) === 0) {
    const seq = Atomics.load(control, DEV_DOORBELL);
    // The clock, once per pass: wall for the host's own timers, wall / K for the model.
    const wall = wallMs();
    const now = wall / k;
    passes++;
    if (wall - lastYield >= YIELD_EVERY_MS) {
      if (wall >= faultAt) throw new Error(`${cfg.name}: injected fault (--inject-fault) after ${cfg.faultAtMs} ms`);
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = wallMs();
    }
    // Take new submissions, then put them through the channel in submission order.
    let nin = 0;
    for (let q = 0; q < qps.length; q++) {
      const qp = qps[q]!;
      let sqHead = qp.header[QP_SQ_HEAD]!;
      const tail = Atomics.load(qp.header, QP_SQ_TAIL);
      while (sqHead !== tail) {
        const cid = qp.sq[sqHead % qp.depth]!;
        sqHead++;
        const at = qp.cmdf[cid * CMD_F64 + CMDF_SUBMIT_MS]!;
        let i = nin++;
        while (i > 0 && inAt[i - 1]! > at) {
          inAt[i] = inAt[i - 1]!;
          inQ[i] = inQ[i - 1]!;
          inCid[i] = inCid[i - 1]!;
          i--;
        }
        inAt[i] = at;
        inQ[i] = q;
        inCid[i] = cid;
      }
      Atomics.store(qp.header, QP_SQ_HEAD, sqHead);
    }
    for (let i = 0; i < nin; i++) {
      const len = qps[inQ[i]!]!.cmd[inCid[i]! * CMD_INTS + CMD_LEN]!;
      busyUntil = Math.max(inAt[i]!, busyUntil) + len / bwPerMs;
      insertPending(busyUntil + latencyMs, inQ[i]!, inCid[i]!);
    }
    // Complete what is due, then raise one interrupt per queue.
    let done = 0;
    while (done < npending && dueAt[(head + done) % cap]! <= now) {
      const j = (head + done) % cap;
      const qp = qps[dueQ[j]!]!;
      const cid = dueCid[j]!;
      qp.cmd[cid * CMD_INTS + CMD_STATUS] = transfer(qp, cid);
      const tail = qp.header[QP_CQ_TAIL]!;
      qp.cq[tail % qp.depth] = cid;
      Atomics.store(qp.header, QP_CQ_TAIL, tail + 1);
      irq[dueQ[j]!] = 1;
      done++;
    }
    Atomics.store(control, DEV_PASSES, passes);
    if (done > 0) {
      commands += done;
      head = (head + done) % cap;
      npending -= done;
      for (let q = 0; q < qps.length; q++) {
        if (irq[q] === 0) continue;
        irq[q] = 0;
        const h = qps[q]!.header;
        Atomics.add(h, QP_CQ_IRQ, 1);
        if (Atomics.load(h, QP_VCPU_PARKED) !== 0) Atomics.notify(h, QP_CQ_IRQ);
      }
      Atomics.store(control, DEV_COMMANDS, commands);
      continue; // the copies took time: read the clock again before sleeping
    }
    // Nothing due: sleep until the next completion. A command submitted from now on arrives no
    // earlier than now and is served after what the channel holds, so it completes no earlier than
    // max(now, busyUntil) + latency; only if that can precede the next completion does a submission
    // need to wake this thread.
    const next = npending > 0 ? dueAt[head]! : Infinity;
    const wait = (next - now) * k;
    if (wait <= 0) continue;
    const doorbell = Math.max(now, busyUntil) + latencyMs < next;
    if (doorbell) Atomics.store(control, DEV_PARKED, 1);
    // Without a doorbell nobody notifies (but the stop request): wait on the word's current value.
    Atomics.wait(control, DEV_DOORBELL, doorbell ? seq : Atomics.load(control, DEV_DOORBELL), Math.min(wait, MAX_PARK_MS));
    if (doorbell) Atomics.store(control, DEV_PARKED, 0);
  }
  cfg.controlPort?.close();
  const cpu1 = threadCpuMs();
  return { commands, passes, cpuMs: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, lifeMs: wallMs() - born };

  function insertPending(at: number, q: number, cid: number): void {
    assert(npending < cap, 'pending commands fit the queues');
    let i = npending;
    while (i > 0 && dueAt[(head + i - 1) % cap]! > at) {
      const from = (head + i - 1) % cap;
      const to = (head + i) % cap;
      dueAt[to] = dueAt[from]!;
      dueQ[to] = dueQ[from]!;
      dueCid[to] = dueCid[from]!;
      i--;
    }
    const j = (head + i) % cap;
    dueAt[j] = at;
    dueQ[j] = q;
    dueCid[j] = cid;
    npending++;
  }
}

/** Ring a device's doorbell after submitting; wake it only if it is parked. */
export function ringDoorbell(control: Int32Array): void {
  Atomics.add(control, DEV_DOORBELL, 1);
  if (Atomics.load(control, DEV_PARKED) !== 0) Atomics.notify(control, DEV_DOORBELL);
}
