// The worker-thread side of the run log. pino formats each record in the worker (so formatting cost
// lands on the thread that has the event, not on the main thread), and its destination is the
// worker's ring in shared memory (ring.ts): a record costs pino's formatting plus one copy of its
// bytes, with no message to the main thread and no system call. The main thread drains the ring.
//
// This module imports nothing from logger.ts at run time, so a worker does not load the main-thread
// machinery (sink, exit handlers).
// pino is loaded only when a worker actually logs: it is the largest module a vCPU thread would load,
// and 32 threads loading it on 2 cores is a third of the VM's boot time.
import type { Logger } from 'pino';
import { InputError } from '../errors.js';
import { LEVEL_VALUES, EVENTS, levelOf, messageOf, type EventFields, type EventName } from './events.js';
import type { LogChannel } from './logger.js';
import { RingWriter } from './ring.js';
import { pinoTimestamp } from './time.js';

/** Identity stamped on every record of this worker that does not carry its own vcpu / device. */
export interface WorkerLogBinding {
  vcpu?: number;
  device?: string;
}

export interface WorkerLogger {
  /** False when the channel carries no ring (logging off): every call is a no-op. */
  readonly enabled: boolean;
  /** Write one record (same typing as RunLogger.emit). Never throws; never waits unless the ring is full. */
  emit<E extends EventName>(event: E, fields: EventFields[E]): void;
  /** Whether records of this event pass the level. */
  isEnabled(event: EventName): boolean;
  /** Resolves once the main thread has taken every record emitted so far (bounded by timeoutMs, default 5 s). */
  flush(timeoutMs?: number): Promise<void>;
  /** No more records: the main thread drains the ring one last time and releases it. */
  close(): void;
}

const NOOP: WorkerLogger = Object.freeze({
  enabled: false,
  emit(): void {},
  isEnabled(): boolean {
    return false;
  },
  flush(): Promise<void> {
    return Promise.resolve();
  },
  close(): void {},
});

class RingLogger implements WorkerLogger {
  readonly enabled = true;
  private readonly writer: RingWriter;
  private readonly pino: Logger;
  private readonly minLevel: number;
  private readonly vcpu: number | undefined;
  private readonly device: string | undefined;
  private closed = false;

  constructor(pino: typeof import('pino').default, channel: LogChannel & { ring: SharedArrayBuffer }, bind: WorkerLogBinding) {
    this.writer = new RingWriter(channel.ring, channel.fullWaitMs);
    this.minLevel = LEVEL_VALUES[channel.level];
    this.vcpu = bind.vcpu;
    this.device = bind.device;
    // The run's one clock for `time` (the main thread's logger orders the file by it).
    this.pino = pino({ level: channel.level, base: undefined, timestamp: pinoTimestamp }, { write: (s: string) => this.writer.write(s) });
  }

  emit<E extends EventName>(event: E, fields: EventFields[E]): void {
    if (this.closed) return;
    const level = levelOf(event, fields);
    if (LEVEL_VALUES[level] < this.minLevel) return;
    // Bound identity first, so it reads early in the line; the record's own fields win.
    const rec: Record<string, unknown> = { event };
    if (this.vcpu !== undefined) rec['vcpu'] = this.vcpu;
    if (this.device !== undefined) rec['device'] = this.device;
    Object.assign(rec, fields);
    // A caller that passes an event object carrying its own msg must not get two "msg" keys.
    if (rec['msg'] !== undefined) rec['msg'] = undefined;
    // Between begin and end the main thread holds back later lines: this one may go before them.
    this.writer.begin();
    try {
      this.pino[level](rec, messageOf(event, fields));
    } finally {
      this.writer.end();
    }
  }

  isEnabled(event: EventName): boolean {
    return !this.closed && LEVEL_VALUES[EVENTS[event].level] >= this.minLevel;
  }

  async flush(timeoutMs = 5000): Promise<void> {
    await this.writer.drained(timeoutMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
  }
}

/**
 * Attach this worker to its channel (from RunLogger.workerChannel(), passed in workerData). A channel
 * has one writer: attaching the same channel twice throws.
 */
export async function attachWorkerLogger(channel: LogChannel | undefined | null, bind: WorkerLogBinding = {}): Promise<WorkerLogger> {
  if (channel === undefined || channel === null || channel.ring === null || channel.level === 'silent') return NOOP;
  if (channel.kind !== 'coco-log-channel' || !(channel.ring instanceof SharedArrayBuffer)) {
    throw new InputError('ELOGCHANNEL', 'attachWorkerLogger: expected a LogChannel from RunLogger.workerChannel()');
  }
  const { default: pino } = await import('pino');
  return new RingLogger(pino, channel as LogChannel & { ring: SharedArrayBuffer }, bind);
}
