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
// The thread never spins and never polls: it reads the clock once per pass, posts what is due, and
// sleeps (Atomics.wait on its doorbell word) until the next completion is due, or, holding nothing,
// until it is rung. It asks for a vCPU's doorbell (DEV_PARKED) only when a command submitted now
// could complete before the next one it holds, so a busy device is not woken by every submission,
// and an idle one sleeps until one arrives: its CPU use is proportional to the commands it serves
// (DEV_PASSES counts its passes; an idle device makes none).
//
// No lost wake-up. A producer publishes its work, then bumps DEV_DOORBELL, then notifies: a vCPU
// publishes SQ_TAIL and notifies if DEV_PARKED (ringDoorbell); the control plane counts its request
// in DEV_CTL_REQUESTS after posting it, and the stop sets DEV_STOP, and both always notify
// (wakeDevice). The device reads DEV_DOORBELL at the start of a pass, before it looks at the stop
// flag, the control requests and the queues, sets DEV_PARKED before it waits, and waits only while
// the word still holds what it read: a bump after that read makes the wait return at once, and a
// notify after the wait began ends it. A wait without DEV_PARKED re-reads the word, then re-checks
// the stop flag and the control requests (the producers that always notify) before it sleeps.
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
  CMDF_SUBMIT_MS, DEV_COMMANDS, DEV_CTL_REQUESTS, DEV_DOORBELL, DEV_PARKED, DEV_PASSES, DEV_STOP, OP_READ, OP_TRIM, OP_WRITE, QP_CQ_IRQ, QP_CQ_TAIL, QP_SQ_HEAD, QP_SQ_TAIL,
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

  // Control-plane calls answered (each counts once, as the control plane counts each call in
  // DEV_CTL_REQUESTS before posting it): while fewer than counted, the loop yields to its event
  // loop every pass. Checked: never more than counted (a call that was not counted could be left
  // unanswered while the device sleeps).
  let served = 0;
  const serve = (): void => {
    served++;
    assert(served <= Atomics.load(control, DEV_CTL_REQUESTS), 'every control-plane call is counted in DEV_CTL_REQUESTS before it is posted (callDevice)');
  };
  const tunable = (name: string): number => {
    if (name === 'latency_us') return latencyMs * 1000;
    if (name === 'bandwidth_bytes_per_s') return bwPerMs * 1000;
    throw new Error(`${cfg.name}: no tunable ${name}`);
  };
  const api: DeviceControlApi = {
    get: (name) => {
      serve();
      return tunable(name);
    },
    set: (name, value) => {
      serve();
      const old = tunable(name);
      assert(Number.isFinite(value) && value >= 0, 'device tunables are validated by the control plane');
      if (name === 'latency_us') latencyMs = value / 1000;
      else bwPerMs = Math.max(1, value) / 1000;
      return old;
    },
  };
  if (cfg.controlPort !== undefined) exposeOnPort(api, cfg.controlPort);
  const faultAt = cfg.faultAtMs === undefined ? Infinity : wallMs() + cfg.faultAtMs;
  const controlPending = (): boolean => Atomics.load(control, DEV_STOP) !== 0 || served !== Atomics.load(control, DEV_CTL_REQUESTS);

  for (;;) {
    // Read before every check below (the no-lost-wake-up rule, at the top of this file).
    const seq = Atomics.load(control, DEV_DOORBELL);
    if (Atomics.load(control, DEV_STOP) !== 0) break;
    // A control-plane call is answered in the event loop's turn after its message is queued; the
    // count is re-read every pass until every counted call is answered.
    if (served !== Atomics.load(control, DEV_CTL_REQUESTS)) await new Promise<void>((resolve) => setImmediate(resolve));
    // The clock, once per pass: wall for the host's own timers, wall / K for the model.
    const wall = wallMs();
    const now = wall / k;
    passes++;
    if (wall >= faultAt) throw new Error(`${cfg.name}: injected fault (--inject-fault) after ${cfg.faultAtMs} ms`);
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
    // Nothing due: sleep until the next completion (holding none: until rung), or the injected
    // fault. A command submitted from now on arrives no earlier than now and is served after what
    // the channel holds, so it completes no earlier than max(now, busyUntil) + latency; only if
    // that can precede the next completion does a submission need to wake this thread.
    const next = npending > 0 ? dueAt[head]! : Infinity;
    const wait = Math.min((next - now) * k, faultAt - wall);
    if (wait <= 0) continue;
    const doorbell = Math.max(now, busyUntil) + latencyMs < next;
    // Without a doorbell only the stop and the control plane notify: wait on the word's current
    // value, read before they are checked again. (A call still unanswered after this pass's yield
    // is checked here too: the loop yields again rather than sleep on it.)
    const word = doorbell ? seq : Atomics.load(control, DEV_DOORBELL);
    if (controlPending()) continue;
    if (doorbell) Atomics.store(control, DEV_PARKED, 1);
    Atomics.wait(control, DEV_DOORBELL, word, wait);
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

/** Wake a device whatever it waits for, after publishing a control request or the stop (rare: always notifies). */
export function wakeDevice(control: Int32Array): void {
  Atomics.add(control, DEV_DOORBELL, 1);
  Atomics.notify(control, DEV_DOORBELL);
}

/** A control-plane call to a device: counted (DEV_CTL_REQUESTS), posted by `post`, then the device is woken to answer it. */
export function callDevice<T>(control: Int32Array, post: () => Promise<T>): Promise<T> {
  Atomics.add(control, DEV_CTL_REQUESTS, 1);
  const answer = post();
  wakeDevice(control);
  return answer;
}

/** Ask a device thread to stop: it returns its DeviceResult once its loop sees the flag. */
export function stopDevice(control: Int32Array): void {
  Atomics.store(control, DEV_STOP, 1);
  wakeDevice(control);
}
