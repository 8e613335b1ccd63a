// An emulated device on its own thread (the host side). It is given only shared memory: the swiotlb
// bounce region (decrypted, so the host may touch it), the queue pairs and its own backing store.
// It never receives private guest memory or the swiotlb slot metadata (which, in a real CoCo guest,
// lives in private memory too).
//
// Service model: commands are served in arrival order through one channel of `bandwidth` bytes/s,
// and each completes `latency` after its transfer ends. Completions are batched: all commands due by
// now are posted, then each affected vCPU gets one interrupt.
import type { MessagePort } from 'node:worker_threads';
import { assert } from '../errors.js';
import { exposeOnPort } from '../util/comlink.js';
import { nowMs } from '../util/clock.js';
import type { DeviceControlApi } from '../vm/control.js';
import {
  CMD_F64, CMD_INTS, CMD_LEN, CMD_NENTS, CMD_OPCODE, CMD_SG_LEN, CMD_STATUS, CMDF_OFFSET, CMDF_SG_ADDR,
  DEV_COMMANDS, DEV_DOORBELL, DEV_PARKED, DEV_STOP, OP_READ, OP_WRITE, QP_CQ_IRQ, QP_CQ_TAIL, QP_SQ_HEAD, QP_SQ_TAIL,
  QP_VCPU_PARKED, QueuePair, STATUS_ERROR, STATUS_OK,
} from './queue.js';

export type DeviceKind = 'nvme' | 'nic';

export interface DeviceConfig {
  kind: DeviceKind;
  name: string;
  /** The swiotlb bounce region (pool data) and where it sits on the bus. */
  bounce: SharedArrayBuffer;
  bounceStart: number;
  /** One queue pair per vCPU. */
  queues: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  latencyUs: number;
  bandwidthBytesPerSec: number;
  /** Backing store size (storage); 0 for the NIC. */
  capacityBytes: number;
  /** The control plane's port (transferred): this thread serves DeviceControlApi on it. */
  controlPort?: MessagePort;
  /** Fault injection (--inject-fault): throw this long after the device starts. */
  faultAtMs?: number;
}

export interface DeviceResult {
  commands: number;
}

/** Longest park before re-checking the stop flag. */
const MAX_PARK_MS = 20;
/** Below this, spinning is cheaper than a park/wake hand-off (~30 us). */
const SPIN_BELOW_MS = 0.05;
/** How often the device loop yields to its event loop, where control-plane calls are answered. */
const YIELD_EVERY_MS = 10;

export async function runDevice(cfg: DeviceConfig): Promise<DeviceResult> {
  const bounce = new Uint8Array(cfg.bounce);
  const bounceEnd = cfg.bounceStart + bounce.length;
  const store = cfg.capacityBytes > 0 ? new Uint8Array(new SharedArrayBuffer(cfg.capacityBytes)) : null;
  const qps = cfg.queues.map((q) => new QueuePair(q));
  const control = new Int32Array(cfg.control);
  // The service model's tunables: read at every command, changed over the control plane.
  let bwPerMs = cfg.bandwidthBytesPerSec / 1000;
  let latencyMs = cfg.latencyUs / 1000;
  // Pending commands: parallel arrays kept sorted by completion time (at most sum of depths).
  const cap = qps.reduce((s, q) => s + q.depth, 0);
  const dueAt = new Float64Array(cap);
  const dueQ = new Int32Array(cap);
  const dueCid = new Int32Array(cap);
  let npending = 0;
  let busyUntil = 0;
  let commands = 0;
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
      // The device can reach only the shared bounce region: anything else is a DMA error.
      if (addr < cfg.bounceStart || addr + len > bounceEnd) return STATUS_ERROR;
      const b = addr - cfg.bounceStart;
      if (store !== null) {
        if (devOff + len > store.length) return STATUS_ERROR;
        if (op === OP_WRITE) store.set(bounce.subarray(b, b + len), devOff);
        else bounce.set(store.subarray(devOff, devOff + len), b);
      } else if (op === OP_READ) {
        // A received packet: a recognisable pattern from the queue and offset.
        bounce.fill((devOff + e) & 0xff, b, b + len);
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
  const faultAt = cfg.faultAtMs === undefined ? Infinity : nowMs() + cfg.faultAtMs;
  let lastYield = nowMs();

  while (Atomics.load(control, DEV_STOP) === 0) {
    const seq = Atomics.load(control, DEV_DOORBELL);
    const now = nowMs();
    if (now - lastYield >= YIELD_EVERY_MS) {
      if (now >= faultAt) throw new Error(`${cfg.name}: injected fault (--inject-fault) after ${cfg.faultAtMs} ms`);
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = nowMs();
    }
    // Take new submissions.
    for (let q = 0; q < qps.length; q++) {
      const qp = qps[q]!;
      let head = qp.header[QP_SQ_HEAD]!;
      const tail = Atomics.load(qp.header, QP_SQ_TAIL);
      while (head !== tail) {
        const cid = qp.sq[head % qp.depth]!;
        head++;
        const len = qp.cmd[cid * CMD_INTS + CMD_LEN]!;
        busyUntil = Math.max(now, busyUntil) + len / bwPerMs;
        insertPending(busyUntil + latencyMs, q, cid);
      }
      Atomics.store(qp.header, QP_SQ_HEAD, head);
    }
    // Complete what is due, then raise one interrupt per queue.
    let done = 0;
    while (done < npending && dueAt[done]! <= now) done++;
    for (let i = 0; i < done; i++) {
      const qp = qps[dueQ[i]!]!;
      const cid = dueCid[i]!;
      qp.cmd[cid * CMD_INTS + CMD_STATUS] = transfer(qp, cid);
      const tail = qp.header[QP_CQ_TAIL]!;
      qp.cq[tail % qp.depth] = cid;
      Atomics.store(qp.header, QP_CQ_TAIL, tail + 1);
      irq[dueQ[i]!] = 1;
      commands++;
    }
    if (done > 0) {
      dueAt.copyWithin(0, done, npending);
      dueQ.copyWithin(0, done, npending);
      dueCid.copyWithin(0, done, npending);
      npending -= done;
      for (let q = 0; q < qps.length; q++) {
        if (irq[q] === 0) continue;
        irq[q] = 0;
        const h = qps[q]!.header;
        Atomics.add(h, QP_CQ_IRQ, 1);
        if (Atomics.load(h, QP_VCPU_PARKED) !== 0) Atomics.notify(h, QP_CQ_IRQ);
      }
      Atomics.store(control, DEV_COMMANDS, commands);
      continue;
    }
    // Nothing due: sleep until the next completion or a doorbell.
    const wait = npending > 0 ? dueAt[0]! - nowMs() : MAX_PARK_MS;
    if (wait <= SPIN_BELOW_MS) continue;
    Atomics.store(control, DEV_PARKED, 1);
    Atomics.wait(control, DEV_DOORBELL, seq, Math.min(wait, MAX_PARK_MS));
    Atomics.store(control, DEV_PARKED, 0);
  }
  cfg.controlPort?.close();
  return { commands };

  function insertPending(at: number, q: number, cid: number): void {
    assert(npending < cap, 'pending commands fit the queues');
    let i = npending;
    while (i > 0 && dueAt[i - 1]! > at) {
      dueAt[i] = dueAt[i - 1]!;
      dueQ[i] = dueQ[i - 1]!;
      dueCid[i] = dueCid[i - 1]!;
      i--;
    }
    dueAt[i] = at;
    dueQ[i] = q;
    dueCid[i] = cid;
    npending++;
  }
}

/** Ring a device's doorbell after submitting; wake it only if it is parked. */
export function ringDoorbell(control: Int32Array): void {
  Atomics.add(control, DEV_DOORBELL, 1);
  if (Atomics.load(control, DEV_PARKED) !== 0) Atomics.notify(control, DEV_DOORBELL);
}
