// The device thread reaches only the shared bounce region: a command pointing anywhere else (private
// guest memory included) fails with a DMA error and touches nothing.
import { MessageChannel, Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { DeviceConfig } from '../../src/devices/device.js';
import { callDevice, ringDoorbell, stopDevice } from '../../src/devices/device.js';
import {
  CMD_F64, CMD_INTS, CMD_LEN, CMD_NENTS, CMD_OPCODE, CMD_SG_LEN, CMD_STATUS, CMDF_OFFSET, CMDF_SG_ADDR, CMDF_SUBMIT_MS,
  DEV_CONTROL_INTS, DEV_PASSES, OP_READ, OP_WRITE, QP_CQ_TAIL, QP_SQ_TAIL, QueuePair, STATUS_ERROR, STATUS_OK,
} from '../../src/devices/queue.js';
import { nowMs } from '../../src/util/clock.js';
import { releaseRemote, wrapPort } from '../../src/util/comlink.js';
import type { DeviceControlApi } from '../../src/vm/control.js';
import { workerFile } from '../../src/util/worker-file.js';
import { GUEST_BASE, POOL_START } from '../helpers.js';

describe('device isolation', () => {
  it('serves DMA to the bounce region and refuses any other address', async () => {
    const bounce = new SharedArrayBuffer(64 * 2048);
    const qp = QueuePair.create(4);
    const control = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
    const cfg: DeviceConfig = { kind: 'nvme', name: 'nvme0', bounce: { data: bounce, start: POOL_START }, queues: [qp.sab], control, latencyUs: 1, bandwidthBytesPerSec: 1e9, capacityBytes: 1 << 20 };
    const w = new Worker(workerFile('device'), { workerData: cfg });
    const done = new Promise((r) => w.once('message', r));
    const submit = (cid: number, op: number, addr: number) => {
      qp.cmd[cid * CMD_INTS + CMD_OPCODE] = op;
      qp.cmd[cid * CMD_INTS + CMD_NENTS] = 1;
      qp.cmd[cid * CMD_INTS + CMD_LEN] = 4096;
      qp.cmd[cid * CMD_INTS + CMD_SG_LEN] = 4096;
      qp.cmdf[cid * CMD_F64 + CMDF_OFFSET] = 0;
      qp.cmdf[cid * CMD_F64 + CMDF_SG_ADDR] = addr;
      qp.cmdf[cid * CMD_F64 + CMDF_SUBMIT_MS] = nowMs();
      const t = qp.header[QP_SQ_TAIL]!;
      qp.sq[t % qp.depth] = cid;
      Atomics.store(qp.header, QP_SQ_TAIL, t + 1);
      ringDoorbell(new Int32Array(control));
    };
    new Uint8Array(bounce).fill(0x42, 0, 4096);
    submit(0, OP_WRITE, POOL_START); // bounce -> disk
    submit(1, OP_WRITE, GUEST_BASE); // private memory: refused
    submit(2, OP_READ, POOL_START + 8192); // disk -> bounce
    const deadline = Date.now() + 5000;
    while (Atomics.load(qp.header, QP_CQ_TAIL) < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    stopDevice(new Int32Array(control));
    await done;
    expect(qp.cmd[0 * CMD_INTS + CMD_STATUS]).toBe(STATUS_OK);
    expect(qp.cmd[1 * CMD_INTS + CMD_STATUS]).toBe(STATUS_ERROR);
    expect(qp.cmd[2 * CMD_INTS + CMD_STATUS]).toBe(STATUS_OK);
    expect(new Uint8Array(bounce)[8192 + 100]).toBe(0x42); // read back what was written
    // The configuration a device receives holds no private memory at all: only these buffers.
    expect([...Object.values(cfg), ...Object.values(cfg.bounce)].filter((v) => v instanceof SharedArrayBuffer)).toEqual([control, bounce]);
  });
});

/** `p`, or a rejection naming `what` if it does not settle in 20 s: a lost wake-up hangs, it never slows. */
const within = <T>(p: Promise<T>, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was not answered in 20 s: a lost wake-up`)), 20_000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
};
const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The service model: one channel in submission-time order (CMDF_SUBMIT_MS), each command done
// `latency` after its transfer; the device thread sleeps between completions instead of spinning.
describe('device service model', () => {
  const start = (latencyUs: number, bandwidth: number, depth: number) => {
    const bounce = new SharedArrayBuffer(depth * 4096);
    const qp = QueuePair.create(depth);
    const control = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
    const ch = new MessageChannel();
    const cfg: DeviceConfig = {
      kind: 'nvme', name: 'nvme0', bounce: { data: bounce, start: POOL_START }, queues: [qp.sab], control, latencyUs, bandwidthBytesPerSec: bandwidth, capacityBytes: 1 << 20, controlPort: ch.port2,
    };
    const w = new Worker(workerFile('device'), { workerData: cfg, transferList: [ch.port2] });
    const done = new Promise((r) => w.once('message', r));
    const ctl = new Int32Array(control);
    const remote = wrapPort<DeviceControlApi>(ch.port1);
    const stop = async () => {
      stopDevice(ctl);
      await within(done, 'the stop of the device');
      releaseRemote(remote);
      ch.port1.close();
    };
    /** A control-plane call, as the control plane makes it (counted, posted, rung). */
    const call = <T>(post: (r: typeof remote) => Promise<T>) => within(callDevice(ctl, () => post(remote)), 'a control-plane call');
    /** Put commands in the SQ with the given submission times, published with one tail store. */
    const submit = (cmds: { cid: number; at: number }[]) => {
      const t = qp.header[QP_SQ_TAIL]!;
      cmds.forEach(({ cid, at }, i) => {
        qp.cmd[cid * CMD_INTS + CMD_OPCODE] = OP_WRITE;
        qp.cmd[cid * CMD_INTS + CMD_NENTS] = 1;
        qp.cmd[cid * CMD_INTS + CMD_LEN] = 4096;
        qp.cmd[cid * CMD_INTS + CMD_SG_LEN] = 4096;
        qp.cmdf[cid * CMD_F64 + CMDF_OFFSET] = cid * 4096;
        qp.cmdf[cid * CMD_F64 + CMDF_SG_ADDR] = POOL_START + cid * 4096;
        qp.cmdf[cid * CMD_F64 + CMDF_SUBMIT_MS] = at;
        qp.sq[(t + i) % qp.depth] = cid;
      });
      Atomics.store(qp.header, QP_SQ_TAIL, t + cmds.length);
      ringDoorbell(ctl);
    };
    const waitCq = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (Atomics.load(qp.header, QP_CQ_TAIL) < n && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      return nowMs();
    };
    return { qp, ctl, stop, submit, waitCq, call };
  };

  it('serves the channel in submission-time order and completes nothing before it is due', async () => {
    // 4096 bytes at 4,096,000 B/s: 1 ms on the channel each; latency 20 ms.
    const d = start(20_000, 4_096_000, 4);
    const t0 = nowMs();
    // In the SQ in the order 0, 1, 2, but submitted at t0+2, t0, t0+1: the channel takes 1, 2, 0.
    d.submit([{ cid: 0, at: t0 + 2 }, { cid: 1, at: t0 }, { cid: 2, at: t0 + 1 }]);
    const seen = await d.waitCq(3);
    await d.stop();
    expect(Array.from(d.qp.cq.subarray(0, 3))).toEqual([1, 2, 0]);
    // The last one: on the channel from t0 + 2 (after 1 and 2, back to back from t0) for 1 ms, then 20 ms.
    expect(seen).toBeGreaterThanOrEqual(t0 + 23);
    for (const cid of [0, 1, 2]) expect(d.qp.cmd[cid * CMD_INTS + CMD_STATUS]).toBe(STATUS_OK);
  });

  it('sleeps until the next completion: a few loop passes per command, not a spin', async () => {
    // 40 us latency, below the old spin threshold (50 us): each command alone, 200 times.
    const d = start(40, 1e9, 1);
    for (let i = 0; i < 200; i++) {
      d.submit([{ cid: 0, at: nowMs() }]);
      await d.waitCq(i + 1);
    }
    const passes = Atomics.load(d.ctl, DEV_PASSES);
    await d.stop();
    // Per command: the pass that takes it (woken by its doorbell), the one that completes it, and
    // at most one more (a wait that ended early, a park timeout). A spinning loop makes hundreds.
    expect(passes).toBeLessThanOrEqual(200 * 3 + 10);
  });

  it('an idle device sleeps until rung: no pass while idle, and control-plane calls and the stop wake it', async () => {
    const d = start(40, 1e9, 1);
    // Serve one command, so that the thread is known to have started and gone idle after it.
    d.submit([{ cid: 0, at: nowMs() }]);
    await d.waitCq(1);
    await sleepMs(50);
    const before = Atomics.load(d.ctl, DEV_PASSES);
    await sleepMs(300);
    // The old loop re-checked every 20 ms (15 passes here); asleep until rung, it makes none.
    expect(Atomics.load(d.ctl, DEV_PASSES)).toBe(before);
    // Each call answered while the device sleeps between them (a lost wake-up would hang here).
    for (let i = 0; i < 50; i++) {
      expect(await d.call((r) => r.set('latency_us', 100 + i))).toBe(i === 0 ? 40 : 99 + i);
      expect(await d.call((r) => r.get('latency_us'))).toBe(100 + i);
    }
    // Calls posted back to back, then commands and calls interleaved.
    const answers = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => d.call((r) => r.get('bandwidth_bytes_per_s'))));
    expect(answers).toEqual(Array(8).fill(1e9));
    for (let i = 1; i <= 50; i++) {
      d.submit([{ cid: 0, at: nowMs() }]);
      const [lat] = await Promise.all([d.call((r) => r.get('latency_us')), d.waitCq(i + 1)]);
      expect(lat).toBe(149);
      expect(Atomics.load(d.qp.header, QP_CQ_TAIL)).toBe(i + 1);
    }
    await sleepMs(50);
    await d.stop(); // the stop of an idle device returns
  });
});
