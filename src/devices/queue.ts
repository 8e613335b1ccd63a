// A submission/completion queue pair in shared memory between one vCPU and one device, as NVMe gives
// each CPU its own queues. Every offset is named here. The vCPU owns SQ_TAIL and CQ_HEAD, the device
// owns SQ_HEAD and CQ_TAIL; a command table entry belongs to the vCPU from completion to submission
// and to the device from submission to completion, and the tail/head Atomics order the handover.
//
// Doorbells: the vCPU rings the device's doorbell (DEV_DOORBELL) after submitting; the device
// bumps the vCPU's CQ_IRQ word after posting completions (the interrupt) and notifies only when the
// vCPU said it is parked, so neither side pays ~30 us for a wake-up the other is not waiting for.
// The device says it is parked (DEV_PARKED) only when a new command could complete before what it
// already holds; otherwise it sleeps until its next completion and reads new commands then (each
// carries its submission time, CMDF_SUBMIT_MS, so reading it late changes nothing in the model).
import { assert } from '../errors.js';

export const MAX_QUEUE_DEPTH = 256;
/** Scatter-gather entries per command: up to 8 x 252 KiB = 2016 KiB per request. */
export const MAX_SG = 8;

// Int32 header of a queue pair.
export const QP_SQ_TAIL = 0;
export const QP_SQ_HEAD = 1;
export const QP_CQ_TAIL = 2;
export const QP_CQ_HEAD = 3;
export const QP_CQ_IRQ = 4; // interrupt counter the vCPU waits on
export const QP_VCPU_PARKED = 5; // 1 while the vCPU is parked on QP_CQ_IRQ
export const QP_DEPTH = 6;
export const QP_HEADER_INTS = 16;

// Int32 command fields, CMD_INTS per command id.
export const CMD_OPCODE = 0;
export const CMD_NENTS = 1;
export const CMD_STATUS = 2;
export const CMD_LEN = 3;
export const CMD_SG_LEN = 4; // MAX_SG lengths follow
export const CMD_INTS = CMD_SG_LEN + MAX_SG;

// Float64 command fields, CMD_F64 per command id.
export const CMDF_OFFSET = 0; // byte offset on the device
export const CMDF_SG_ADDR = 1; // MAX_SG DMA addresses follow
/** When the vCPU submitted the command (the run's clock, nowMs): the device model's arrival time. */
export const CMDF_SUBMIT_MS = CMDF_SG_ADDR + MAX_SG;
export const CMD_F64 = CMDF_SUBMIT_MS + 1;

export const OP_READ = 0; // device -> memory (DMA_FROM_DEVICE)
export const OP_WRITE = 1; // memory -> device (DMA_TO_DEVICE)
/** NVMe Dataset Management, deallocate: the device reads the range list (memory -> device) and moves no block data. */
export const OP_TRIM = 2;

export const STATUS_OK = 0;
export const STATUS_ERROR = 1;

// Device control block (Int32): the device's doorbell, its parked flag, the stop request.
// Every producer of work for the device bumps DEV_DOORBELL after publishing it (device.ts states the
// no-lost-wake-up rule): the vCPUs after submitting, the control plane after posting a request
// (counted in DEV_CTL_REQUESTS), the main thread after setting DEV_STOP.
export const DEV_DOORBELL = 0;
export const DEV_PARKED = 1;
export const DEV_STOP = 2;
export const DEV_COMMANDS = 3; // commands completed, for the progress display
export const DEV_PASSES = 4; // passes of the device loop (each reads the clock once): what it costs the host
export const DEV_CTL_REQUESTS = 5; // control-plane calls posted to the device's port (the main thread counts them)
export const DEV_CONTROL_INTS = 16;

/** Views over one queue pair's SharedArrayBuffer. */
export class QueuePair {
  readonly header: Int32Array;
  readonly sq: Int32Array;
  readonly cq: Int32Array;
  readonly cmd: Int32Array;
  readonly cmdf: Float64Array;
  readonly depth: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, QP_HEADER_INTS);
    this.depth = this.header[QP_DEPTH]!;
    assert(this.depth > 0 && this.depth <= MAX_QUEUE_DEPTH, 'queue depth within 1..MAX_QUEUE_DEPTH');
    const d = this.depth;
    let off = QP_HEADER_INTS * 4;
    this.sq = new Int32Array(sab, off, d);
    off += d * 4;
    this.cq = new Int32Array(sab, off, d);
    off += d * 4;
    this.cmd = new Int32Array(sab, off, d * CMD_INTS);
    off += d * CMD_INTS * 4;
    off = Math.ceil(off / 8) * 8;
    this.cmdf = new Float64Array(sab, off, d * CMD_F64);
  }

  static bytes(depth: number): number {
    const ints = QP_HEADER_INTS + 2 * depth + depth * CMD_INTS;
    return Math.ceil((ints * 4) / 8) * 8 + depth * CMD_F64 * 8;
  }

  static create(depth: number): QueuePair {
    assert(depth > 0 && depth <= MAX_QUEUE_DEPTH, 'queue depth within 1..MAX_QUEUE_DEPTH');
    const sab = new SharedArrayBuffer(QueuePair.bytes(depth));
    new Int32Array(sab)[QP_DEPTH] = depth;
    return new QueuePair(sab);
  }
}
