// The device thread reaches only the shared bounce region: a command pointing anywhere else (private
// guest memory included) fails with a DMA error and touches nothing.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { DeviceConfig } from '../../src/devices/device.js';
import { ringDoorbell } from '../../src/devices/device.js';
import {
  CMD_F64, CMD_INTS, CMD_LEN, CMD_NENTS, CMD_OPCODE, CMD_SG_LEN, CMD_STATUS, CMDF_OFFSET, CMDF_SG_ADDR, DEV_CONTROL_INTS,
  DEV_STOP, OP_READ, OP_WRITE, QP_CQ_TAIL, QP_SQ_TAIL, QueuePair, STATUS_ERROR, STATUS_OK,
} from '../../src/devices/queue.js';
import { workerFile } from '../../src/util/worker-file.js';
import { GUEST_BASE, POOL_START } from '../helpers.js';

describe('device isolation', () => {
  it('serves DMA to the bounce region and refuses any other address', async () => {
    const bounce = new SharedArrayBuffer(64 * 2048);
    const qp = QueuePair.create(4);
    const control = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
    const cfg: DeviceConfig = { kind: 'nvme', name: 'nvme0', bounce, bounceStart: POOL_START, queues: [qp.sab], control, latencyUs: 1, bandwidthBytesPerSec: 1e9, capacityBytes: 1 << 20 };
    const w = new Worker(workerFile('device'), { workerData: cfg });
    const done = new Promise((r) => w.once('message', r));
    const submit = (cid: number, op: number, addr: number) => {
      qp.cmd[cid * CMD_INTS + CMD_OPCODE] = op;
      qp.cmd[cid * CMD_INTS + CMD_NENTS] = 1;
      qp.cmd[cid * CMD_INTS + CMD_LEN] = 4096;
      qp.cmd[cid * CMD_INTS + CMD_SG_LEN] = 4096;
      qp.cmdf[cid * CMD_F64 + CMDF_OFFSET] = 0;
      qp.cmdf[cid * CMD_F64 + CMDF_SG_ADDR] = addr;
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
    Atomics.store(new Int32Array(control), DEV_STOP, 1);
    await done;
    expect(qp.cmd[0 * CMD_INTS + CMD_STATUS]).toBe(STATUS_OK);
    expect(qp.cmd[1 * CMD_INTS + CMD_STATUS]).toBe(STATUS_ERROR);
    expect(qp.cmd[2 * CMD_INTS + CMD_STATUS]).toBe(STATUS_OK);
    expect(new Uint8Array(bounce)[8192 + 100]).toBe(0x42); // read back what was written
    // The configuration a device receives holds no private memory at all: only these buffers.
    expect(Object.values(cfg).filter((v) => v instanceof SharedArrayBuffer)).toEqual([bounce, control]);
  });
});
