// write_iolog on the VM. The vCPU only records each issued I/O as four numbers in a typed chunk
// (IologRecorder: ~0.1-0.3 us an I/O where formatting the line costs ~1 us) and hands full chunks to
// the main thread by transfer (no copy); the main thread formats them into fio's v3 lines and writes
// the file (IologSink, through IologWriter). So the data path pays for a store of four numbers, and
// one postMessage per RECORDS I/Os.
//
// Ordering: one port per vCPU, and a clone's chunks are posted in order, so its lines are in issue
// order. The main thread has all of a clone's lines once its 'closed' message has arrived.
import type { MessagePort } from 'node:worker_threads';
import { A_CLOSE, A_OPEN, IologWriter } from '../workload/iolog.js';
import type { JobInstance } from './jobs.js';

/** Records per chunk: 4096 I/Os, 128 KiB. */
const RECORDS = 4096;
const FIELDS = 4;

type IologMessage = { instance: number; records: Float64Array; count: number } | { instance: number; closed: true };

/** The vCPU's side of one clone's write_iolog. */
export class IologRecorder {
  private chunk = new Float64Array(RECORDS * FIELDS);
  private n = 0;

  constructor(private readonly instance: number, private readonly port: MessagePort) {}

  /** An action at `us` microseconds since the clone started (A_READ, A_WRITE, A_OPEN, ...). */
  record(us: number, op: number, offset: number, length: number): void {
    const c = this.chunk;
    const k = this.n * FIELDS;
    c[k] = us;
    c[k + 1] = op;
    c[k + 2] = offset;
    c[k + 3] = length;
    if (++this.n === RECORDS) this.flush();
  }

  private flush(): void {
    if (this.n === 0) return;
    const msg: IologMessage = { instance: this.instance, records: this.chunk, count: this.n };
    this.port.postMessage(msg, [this.chunk.buffer]);
    this.chunk = new Float64Array(RECORDS * FIELDS);
    this.n = 0;
  }

  /** The clone ended at `us`: its close line, the last chunk, and the end of its log. */
  close(us: number): void {
    this.record(us, A_CLOSE, 0, 0);
    this.flush();
    const msg: IologMessage = { instance: this.instance, closed: true };
    this.port.postMessage(msg);
  }
}

/** The main thread's side: every write_iolog clone's file, written from the chunks its vCPU posts. */
export class IologSink {
  private readonly writers = new Map<number, IologWriter>();
  private readonly ports: MessagePort[] = [];
  private open = 0;
  private allClosed: () => void = () => {};
  /** Resolves once every clone's log is closed. */
  readonly done: Promise<void>;

  constructor(instances: readonly JobInstance[]) {
    for (const i of instances) if (i.writeIolog !== undefined) this.writers.set(i.id, new IologWriter(i.writeIolog.path, i.writeIolog.fileName));
    this.open = this.writers.size;
    this.done = new Promise((resolve) => {
      this.allClosed = resolve;
      if (this.open === 0) resolve();
    });
  }

  /** Whether any clone writes a log. */
  get active(): boolean {
    return this.writers.size > 0;
  }

  /** Take the messages of one vCPU's port. */
  attach(port: MessagePort): void {
    this.ports.push(port);
    port.on('message', (m: IologMessage) => {
      const w = this.writers.get(m.instance);
      if (w === undefined) return;
      if ('closed' in m) {
        w.close();
        this.writers.delete(m.instance);
        if (--this.open === 0) this.allClosed();
        return;
      }
      const c = m.records;
      for (let k = 0; k < m.count * FIELDS; k += FIELDS) {
        const op = c[k + 1]!;
        if (op === A_OPEN || op === A_CLOSE) w.file(c[k]!, op);
        else w.io(c[k]!, op, c[k + 2]!, c[k + 3]!);
      }
    });
  }

  /** Close what is still open (a vCPU that failed sends no 'closed': what it sent is kept) and the ports. */
  close(): void {
    for (const w of this.writers.values()) w.close();
    this.writers.clear();
    for (const p of this.ports) p.close();
  }
}
