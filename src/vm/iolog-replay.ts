// read_iolog on the VM: the plan's side (which log each clone replays, where the log's files lie on
// the emulated disk) and the vCPU's side (the next action of the log and when it may be issued, as
// fio's read_iolog_get and iolog_delay decide it). The vCPU maps and submits the I/O itself, through
// the same driver path as every other NVMe request.
import { InputError } from '../errors.js';
import { printable } from '../util/quote.js';
import {
  A_ADD, A_CLOSE, A_DATASYNC, A_OPEN, A_READ, A_SYNC, A_TRIM, A_WAIT, A_WRITE, type IologAction, IologReader, type IologSummary, IologWriter,
  type ReplayOptions, scanIolog,
} from '../workload/iolog.js';
import type { FioJob } from '../workload/fio.js';
import type { JobInstance } from './jobs.js';

/**
 * The payload of an NVMe Dataset Management (deallocate) command: one struct nvme_dsm_range (cattr,
 * nlb, slba: 16 bytes), which nvme_setup_discard builds and nvme_map_data maps like any data segment
 * (DMA_TO_DEVICE). A trim therefore bounces 16 bytes through swiotlb, whatever its length.
 */
export const NVME_DSM_RANGE_BYTES = 16;

/** What a clone replays: the log, its options, and the device offset of each of its files. */
export interface IologSpec {
  path: string;
  version: 2 | 3;
  replay: ReplayOptions;
  /** Device byte offset of each file of the log, in the log's add order. */
  fileOffsets: number[];
}

/** Logs and their files: one region of the disk per file name, shared by every log and clone naming it (fio opens the same file). */
export class IologRegions {
  private readonly extent = new Map<string, number>();
  private readonly offset = new Map<string, number>();

  /** Note every file of a log and its extent before any region is placed, so one region covers every log naming the file. */
  note(s: IologSummary): void {
    s.files.forEach((name, i) => this.extent.set(name, Math.max(this.extent.get(name) ?? 0, s.extents[i]!)));
  }

  /** The device offset of each file of `s`, placing the regions not placed yet from `capacity` on; returns the new capacity. */
  place(s: IologSummary, capacity: number): { offsets: number[]; capacity: number } {
    const offsets = s.files.map((name) => {
      let at = this.offset.get(name);
      if (at === undefined) {
        at = capacity;
        this.offset.set(name, at);
        capacity += this.extent.get(name)!;
      }
      return at;
    });
    return { offsets, capacity };
  }
}

/** The largest request a clone replaying `s` issues (its buffers are sized from it), checked against what the NVMe accepts. */
export function iologMaxRequest(s: IologSummary, jobName: string, maxRequestBytes: number): number {
  if (s.maxLength > maxRequestBytes) {
    throw new InputError('EBADJOB', `job ${printable(jobName)}: iolog ${printable(s.path, 256)}:${s.maxLengthLine}: a ${s.maxLength}-byte I/O is larger than the ${maxRequestBytes}-byte requests the emulated NVMe accepts; split it in the log`);
  }
  return Math.max(s.maxLength, s.trims > 0 ? NVME_DSM_RANGE_BYTES : 0, 1);
}

/** The log of each clone: fio hands the ':'-separated logs to the clones in turn (get_name_by_idx: clone % count). */
export function cloneIolog(paths: readonly string[], clone: number): string {
  return paths[clone % paths.length]!;
}

/**
 * The vCPU's replay of one clone's log. Invariants: `head` is the next action not yet issued;
 * poll() never returns a time before `now` for an action it has not issued; the log is read
 * through IologReader, at most its BATCH actions at a time.
 *
 * Timing, as fio's read_iolog_get (for each action in turn, once an I/O slot is free):
 * - v3 (and file actions): iolog_delay: the action waits until its delay has passed since the last
 *   issue (time spent since then counts against it), less the overshoot of an earlier sleep
 *   (time_offset);
 * - v2 wait: until atMs after the start of the run (genesis);
 * - a file action is a timing point (it resets the last issue time) and moves no data;
 * - sync and datasync are NVMe flushes: no data, no DMA mapping; the emulated disk has no volatile
 *   cache, so a flush completes at once. Counted and timed like an issue.
 */
export class IologReplay {
  private readonly reader: IologReader;
  private head: IologAction | null = null;
  /** When the head was first looked at with a slot free (fio's call to iolog_delay), and when it is due. */
  private evaluated = false;
  private dueMs = 0;
  private sleepStartMs = -1;
  private lastIssueMs = -Infinity;
  /** fio's td->time_offset, in ms. */
  private timeOffsetMs = 0;
  done = false;
  syncs = 0;
  fileActions = 0;

  constructor(readonly spec: IologSpec, private readonly genesisMs: number) {
    this.reader = new IologReader(spec.path, spec.replay);
  }

  /**
   * Take every due action that is not an I/O (file actions, waits, syncs), and return when the next
   * I/O may be issued: <= now when it may go now (it is then `io`), a later time to wait for, or
   * Infinity at the end of the log. Called only with an I/O slot free: fio looks at the next action
   * (and starts its delay) only when it has an io_u for it.
   */
  poll(now: number): number {
    for (;;) {
      if (this.head === null) {
        this.head = this.reader.peek();
        this.evaluated = false;
        if (this.head === null) {
          this.done = true;
          this.reader.close();
          return Infinity;
        }
      }
      const a = this.head;
      if (!this.evaluated) this.evaluate(a, now);
      if (now < this.dueMs) return this.dueMs;
      if (a.op === A_READ || a.op === A_WRITE || a.op === A_TRIM) return now;
      // Not an I/O: it happens now.
      if (a.op === A_SYNC || a.op === A_DATASYNC) this.syncs++;
      else if (a.op === A_ADD || a.op === A_OPEN || a.op === A_CLOSE) this.fileActions++;
      if (a.op !== A_WAIT) this.issuedAt(now);
      this.next();
    }
  }

  /** The I/O poll() said may go now. */
  get io(): IologAction {
    return this.head!;
  }

  /** The device offset of the current I/O. */
  deviceOffset(): number {
    return this.spec.fileOffsets[this.head!.file]! + this.head!.offset;
  }

  /** The current I/O was issued (mapped and submitted, or failed) at `now`. */
  issued(now: number): void {
    this.issuedAt(now);
    this.next();
  }

  private next(): void {
    this.reader.shift();
    this.head = null;
  }

  private issuedAt(now: number): void {
    // iolog_delay: the overshoot of a sleep beyond the whole delay is taken off the next one.
    if (this.sleepStartMs >= 0) {
      const slept = now - this.sleepStartMs;
      const delay = this.head!.delayUs / 1000;
      this.timeOffsetMs = slept > delay ? slept - delay : 0;
      this.sleepStartMs = -1;
    }
    this.lastIssueMs = now;
  }

  private evaluate(a: IologAction, now: number): void {
    this.evaluated = true;
    this.dueMs = now;
    this.sleepStartMs = -1;
    if (a.op === A_WAIT) {
      this.dueMs = Math.max(now, this.genesisMs + a.atMs);
      return;
    }
    if (a.delayUs === 0) return;
    const delay = a.delayUs / 1000;
    if (delay < this.timeOffsetMs) {
      this.timeOffsetMs = 0;
      return;
    }
    const d = delay - this.timeOffsetMs;
    const since = now - this.lastIssueMs;
    if (d < since) return;
    this.dueMs = now + (d - since);
    this.sleepStartMs = now;
  }

  close(): void {
    this.reader.close();
  }
}

/** Scan every log the jobs replay, once each (bounded memory per log): bad input is an InputError before the VM boots. */
export function scanJobIologs(jobs: readonly FioJob[]): Map<string, IologSummary> {
  const out = new Map<string, IologSummary>();
  for (const job of jobs) {
    for (const p of job.readIolog ?? []) if (!out.has(p)) out.set(p, scanIolog(p, job.replay));
  }
  return out;
}

/** Create each write_iolog file with its header (truncating an old one), before the run: a path that cannot be written is an InputError. */
export function createWriteIologs(instances: readonly JobInstance[]): void {
  for (const i of instances) if (i.writeIolog !== undefined) IologWriter.create(i.writeIolog.path, i.writeIolog.fileName);
}
