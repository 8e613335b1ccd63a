// The run's logger, main-thread side: one pino logger writing NDJSON to a file and/or stdout, plus a
// ring per worker thread (see ring.ts) that the workers' own pino loggers write finished lines into.
//
// Flow of a record:
// - main thread: emit() -> pino formats -> FdSink buffer -> write(2) in batches (>= 64 KiB, every
//   drain tick, or on flush);
// - worker thread: WorkerLogger.emit() -> pino formats in the worker -> bytes copied into the
//   worker's ring; the main thread drains every ring on each tick (COCO_LOG_DRAIN_INTERVAL).
//
// Time order: every record's `time` comes from one clock (time.ts: util/clock.ts wallMs, the same
// in every thread). Drained rings hold each worker's records in order, but
// one drain takes ring after ring, so written as drained the file would interleave workers by ring,
// not by time (pino-pretty showed times going back and forth). So every line, the main thread's
// too, waits in a reorder buffer and is written in time order (equal times in arrival order) once
// no record still to come can be older: at each drain the watermark is the earlier of now and the
// time at which any producer began a record it has not published yet (ring.ts STAMPING), read
// before its ring is drained. A line that still arrives below it (the clock is not one after all)
// is written late and counted (stats().late). Flushing writes everything held, in order.
//
// Completeness: flushSync() drains every ring and writes everything, synchronously. It runs on
// process 'exit', from 'uncaughtExceptionMonitor' (so before Node prints the error and exits 1, and
// for unhandled rejections too) and on SIGINT/SIGTERM. On a signal, if nothing else in the process
// listens for it, the handler then re-raises the signal so the process still dies of it (exit status
// 130 for Ctrl-C), as it would have without us; if the application has its own handler, it decides.
import { quote } from '../util/quote.js';
import { openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { InputError } from '../errors.js';
import {
  EVENTS, LEVEL_VALUES, LOG_LEVEL_FORM, isLogLevelSetting, levelOf, messageOf,
  type EventFields, type EventName, type LogLevelSetting,
} from './events.js';
import { RingReader, createRingBuffer, ringStats } from './ring.js';
import { wallMs } from '../util/clock.js';
import { pinoTimestamp } from './time.js';
import { FdSink } from './sink.js';
import { logSettings } from './settings.js';

/**
 * What a worker thread needs in order to log: pass it in workerData or postMessage as is (it is
 * structured-cloneable: a SharedArrayBuffer and plain values, nothing to transfer). One channel per
 * worker: attachWorkerLogger() claims it.
 */
export interface LogChannel {
  readonly kind: 'coco-log-channel';
  /** Names the worker in log_overflow records: "vcpu3", "nvme0". */
  readonly name: string;
  readonly level: LogLevelSetting;
  /** The ring the worker writes into; null when logging is off. */
  readonly ring: SharedArrayBuffer | null;
  /** Longest a worker waits for room in a full ring before dropping a record. */
  readonly fullWaitMs: number;
}

export interface RunLoggerOptions {
  /** NDJSON log file; created or truncated (its directory must exist). */
  file?: string;
  /** Where `file` came from, for the error when it cannot be opened (e.g. "--log-file", "COCO_LOG_FILE (.env)"). */
  fileWhat?: string;
  /** Threshold: trace, debug, info, warn, error, fatal or silent. */
  level: string;
  /** Also (or only) write the NDJSON to stdout. */
  stdout?: boolean;
  /** Bytes of shared memory per worker channel. Default COCO_LOG_RING_SIZE. */
  ringBytes?: number;
  /** Drain and write period. Default COCO_LOG_DRAIN_INTERVAL. */
  drainIntervalMs?: number;
  /** A worker's longest wait on a full ring. Default COCO_LOG_FULL_WAIT. */
  fullWaitMs?: number;
  /** Flush on exit, uncaught exception, SIGINT and SIGTERM. Default true. */
  exitHandlers?: boolean;
}

export interface WorkerChannelOptions {
  ringBytes?: number;
  fullWaitMs?: number;
}

export interface RunLoggerStats {
  /** Bytes written to the log so far. */
  bytes: number;
  /** Records written by worker threads (published into their rings). */
  workerRecords: number;
  /** Worker records dropped because a ring stayed full. */
  dropped: number;
  /** Times a worker had to wait for room in its ring. */
  fullWaits: number;
  /** Channels still open. */
  channels: number;
  /** Records that reached the reorder buffer after a later record had been written (out of order in the file). */
  late: number;
}

export interface RunLogger {
  /** False when there is no destination or the level is silent: every call is then a no-op. */
  readonly enabled: boolean;
  readonly level: LogLevelSetting;
  /** Write one record: `{level, time, event, ...fields, msg}`. */
  emit<E extends EventName>(event: E, fields: EventFields[E]): void;
  /** Whether records of this event pass the level (to skip building costly fields). */
  isEnabled(event: EventName): boolean;
  /** A new channel for one worker thread; `opts` overrides the logger's ring size and full wait. */
  workerChannel(name?: string, opts?: WorkerChannelOptions): LogChannel;
  /** Drain the workers' rings and write everything buffered. */
  flush(): Promise<void>;
  /** The same, synchronously: safe in 'exit' and signal handlers. */
  flushSync(): void;
  /** Flush, stop the timer, remove the process handlers and close the file. Later emits are ignored. */
  close(): Promise<void>;
  stats(): RunLoggerStats;
}

/** Validate a level setting from a flag or the environment (`what` names it in the error). */
export function parseLogLevel(text: string, what: string): LogLevelSetting {
  const t = text.trim().toLowerCase();
  if (!isLogLevelSetting(t)) throw new InputError('EBADLEVEL', `${what}: ${quote(text)} is not a log level; expected ${LOG_LEVEL_FORM}`);
  return t;
}

// ------------------------------------------------------------------------------------------------
// Process-wide exit handling, shared by every open RunLogger.

const open = new Set<RunLoggerImpl>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let installed = false;

function flushAll(): void {
  for (const l of open) l.flushSync();
}

function onSignal(signal: NodeJS.Signals): void {
  flushAll();
  if (process.listenerCount(signal) === 1) {
    // We were the only listener: behave as if we had never been here, i.e. die of the signal.
    uninstall();
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', flushAll);
  process.on('uncaughtExceptionMonitor', flushAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', flushAll);
  process.off('uncaughtExceptionMonitor', flushAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

// ------------------------------------------------------------------------------------------------

/** Held lines beyond this many bytes are written at once (in order), so that the buffer stays bounded. */
const REORDER_MAX_BYTES = 8 * 1024 * 1024;

const TIME_KEY = [...',"time":'].map((c) => c.charCodeAt(0));

/** The `time` of a pino line (bytes from..to), or -Infinity when it has none where pino puts it. */
export function lineTime(b: Uint8Array, from: number, to: number): number {
  const end = Math.min(to, from + 48);
  outer: for (let i = from; i + TIME_KEY.length <= end; i++) {
    for (let k = 0; k < TIME_KEY.length; k++) if (b[i + k] !== TIME_KEY[k]) continue outer;
    // The number's characters (digits and a fraction: time.ts writes microseconds), read as JSON would.
    let j = i + TIME_KEY.length;
    let text = '';
    for (; j < to && text.length < 32; j++) {
      const c = b[j]!;
      if (!((c >= 48 && c <= 57) || c === 46)) break;
      text += String.fromCharCode(c);
    }
    const v = text.length > 0 ? Number(text) : NaN;
    return Number.isFinite(v) ? v : -Infinity;
  }
  return -Infinity;
}

interface HeldLine {
  time: number;
  seq: number;
  bytes: Uint8Array;
}

/** The reorder buffer: lines in, lines out in time order once they are old enough. */
export class ReorderBuffer {
  private held: HeldLine[] = [];
  private heldBytes = 0;
  private seq = 0;
  private lastWritten = -Infinity;
  /** Lines that came in older than a line already written. */
  late = 0;

  constructor(private readonly write: (b: Uint8Array) => void) {}

  /** One line (with its newline). */
  addLine(bytes: Uint8Array, time: number): void {
    if (time < this.lastWritten) this.late++;
    this.held.push({ time, seq: this.seq++, bytes });
    this.heldBytes += bytes.length;
  }

  /** Whole lines, as a ring gives them. */
  addLines(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      let nl = chunk.indexOf(10, start);
      if (nl < 0) nl = chunk.length - 1;
      this.addLine(chunk.subarray(start, nl + 1), lineTime(chunk, start, nl));
      start = nl + 1;
    }
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Write, in time order, every line with time <= watermark (all of them when the buffer is too big). */
  release(watermark: number): void {
    if (this.held.length === 0) return;
    if (this.heldBytes > REORDER_MAX_BYTES) watermark = Infinity;
    this.held.sort((a, b) => a.time - b.time || a.seq - b.seq);
    let n = 0;
    while (n < this.held.length && this.held[n]!.time <= watermark) {
      const l = this.held[n]!;
      this.write(l.bytes);
      this.heldBytes -= l.bytes.length;
      if (l.time > this.lastWritten) this.lastWritten = l.time;
      n++;
    }
    if (n > 0) this.held = this.held.slice(n);
  }
}

class RunLoggerImpl implements RunLogger {
  readonly enabled = true;
  private readonly pino: Logger;
  private readonly sink = new FdSink();
  private readonly readers: Array<{ reader: RingReader; name: string }> = [];
  private readonly minLevel: number;
  private readonly timer: NodeJS.Timeout;
  private readonly ringBytes: number;
  private readonly fullWaitMs: number;
  private closed = false;
  private burst = false;
  private burstPending = false;
  private channelCount = 0;
  private retired = { workerRecords: 0, dropped: 0, fullWaits: 0 };
  private readonly handlesExit: boolean;
  private readonly reorder: ReorderBuffer;
  /** Lines stamped at or before this may be written: set by each drain. */
  private watermark = -Infinity;

  constructor(readonly level: Exclude<LogLevelSetting, 'silent'>, opts: RunLoggerOptions) {
    const settings = opts.ringBytes === undefined || opts.drainIntervalMs === undefined || opts.fullWaitMs === undefined
      ? logSettings()
      : undefined;
    this.ringBytes = opts.ringBytes ?? settings!.ringBytes;
    this.fullWaitMs = opts.fullWaitMs ?? settings!.fullWaitMs;
    const drainIntervalMs = opts.drainIntervalMs ?? settings!.drainIntervalMs;
    if (opts.file !== undefined) {
      let fd: number;
      try {
        fd = openSync(opts.file, 'w');
      } catch (err) {
        throw logFileError(opts.file, err as NodeJS.ErrnoException, opts.fileWhat);
      }
      this.sink.addTarget(fd, opts.file, true);
    }
    if (opts.stdout === true) this.sink.addTarget(1, 'stdout', false);
    this.minLevel = LEVEL_VALUES[level];
    this.reorder = new ReorderBuffer((b) => this.sink.writeBytes(b));
    // base: undefined drops pid and hostname: every record of a run has the same ones.
    this.pino = pino({ level, base: undefined, timestamp: pinoTimestamp }, {
      write: (s: string) => {
        const b = Buffer.from(s, 'utf8');
        this.reorder.addLine(b, lineTime(b, 0, b.length));
      },
    });
    this.timer = setInterval(() => this.tick(), drainIntervalMs);
    this.timer.unref();
    this.handlesExit = opts.exitHandlers !== false;
    if (this.handlesExit) {
      open.add(this);
      install();
    }
  }

  emit<E extends EventName>(event: E, fields: EventFields[E]): void {
    if (this.closed) return;
    const level = levelOf(event, fields);
    if (LEVEL_VALUES[level] < this.minLevel) return;
    // Take what the workers have published (into the reorder buffer, which orders it with this one).
    this.drainRings();
    const rec: Record<string, unknown> = { event, ...fields };
    // A caller that passes an event object carrying its own msg must not get two "msg" keys.
    if (rec['msg'] !== undefined) rec['msg'] = undefined;
    this.pino[level](rec, messageOf(event, fields));
  }

  isEnabled(event: EventName): boolean {
    return !this.closed && LEVEL_VALUES[EVENTS[event].level] >= this.minLevel;
  }

  workerChannel(name?: string, opts: WorkerChannelOptions = {}): LogChannel {
    const ring = createRingBuffer(opts.ringBytes ?? this.ringBytes);
    const channelName = name ?? `worker${this.channelCount}`;
    this.channelCount++;
    if (!this.closed) this.readers.push({ reader: new RingReader(ring), name: channelName });
    return { kind: 'coco-log-channel', name: channelName, level: this.level, ring, fullWaitMs: opts.fullWaitMs ?? this.fullWaitMs };
  }

  flush(): Promise<void> {
    this.flushSync();
    return Promise.resolve();
  }

  flushSync(): void {
    if (this.closed) return;
    this.drainRings();
    this.reorder.release(Infinity);
    this.sink.flushSync();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flushSync();
    this.closed = true;
    clearInterval(this.timer);
    if (this.handlesExit) {
      open.delete(this);
      if (open.size === 0) uninstall();
    }
    this.sink.close();
    return Promise.resolve();
  }

  stats(): RunLoggerStats {
    const s = { bytes: this.sink.written + this.sink.buffered + this.reorder.bytes, ...this.retired, channels: this.readers.length, late: this.reorder.late };
    for (const { reader } of this.readers) {
      const r = ringStats(reader.sab);
      s.workerRecords += r.lines;
      s.dropped += r.dropped;
      s.fullWaits += r.fullWaits;
    }
    return s;
  }

  private tick(): void {
    const fill = this.drainRings();
    this.reorder.release(this.watermark);
    this.sink.flushSync();
    // Under a burst (some ring a quarter full within one interval) drain every millisecond instead
    // of once per interval, and keep doing so while ticks still find more than 1/64 of a ring, so
    // that workers rarely find their ring full.
    this.burst = this.burst ? fill * 64 >= 1 : fill * 4 >= 1;
    if (this.burst && !this.closed && !this.burstPending) {
      this.burstPending = true;
      setTimeout(() => {
        this.burstPending = false;
        if (!this.closed) this.tick();
      }, 1).unref();
    }
  }

  /**
   * Move every finished worker line into the sink; report drops; forget closed channels. Returns
   * the largest fill found, as a fraction of its ring's capacity.
   */
  private drainRings(): number {
    let fill = 0;
    // Records not drained yet are stamped no earlier than this (less the stamps' rounding, well under 1 ms).
    let watermark = wallMs() - 1;
    for (let i = 0; i < this.readers.length; i++) {
      const { reader, name } = this.readers[i]!;
      const since = reader.stampingSince(); // read before draining, like closed
      if (since - 1 < watermark) watermark = since - 1;
      const closed = reader.closed(); // read before draining, so nothing published after it is missed
      const bytes = reader.drain();
      if (bytes !== undefined) {
        fill = Math.max(fill, bytes.length / reader.capacity);
        this.reorder.addLines(bytes);
      }
      const dropped = reader.takeDropped();
      if (dropped > 0) {
        const f = { source: name, dropped };
        const rec: Record<string, unknown> = { event: 'log_overflow', ...f };
        this.pino.warn(rec, messageOf('log_overflow', f));
      }
      if (closed && reader.pending() === 0) {
        const r = ringStats(reader.sab);
        this.retired.workerRecords += r.lines;
        this.retired.dropped += r.dropped;
        this.retired.fullWaits += r.fullWaits;
        this.readers.splice(i, 1);
        i--;
      }
    }
    this.watermark = watermark;
    return fill;
  }
}

class OffLogger implements RunLogger {
  readonly enabled = false;
  constructor(readonly level: LogLevelSetting) {}
  emit(): void {}
  isEnabled(): boolean {
    return false;
  }
  workerChannel(name?: string): LogChannel {
    return { kind: 'coco-log-channel', name: name ?? 'worker', level: 'silent', ring: null, fullWaitMs: 0 };
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  flushSync(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
  stats(): RunLoggerStats {
    return { bytes: 0, workerRecords: 0, dropped: 0, fullWaits: 0, channels: 0, late: 0 };
  }
}

/**
 * The run's logger. With neither `file` nor `stdout`, or at level silent, logging is off: every
 * method is a cheap no-op and worker channels carry no ring.
 */
export function createRunLogger(opts: RunLoggerOptions): RunLogger {
  const level = parseLogLevel(opts.level, 'log level');
  if ((opts.file === undefined || opts.file === '') && opts.stdout !== true) return new OffLogger(level);
  if (level === 'silent') return new OffLogger(level);
  return new RunLoggerImpl(level, { ...opts, file: opts.file === '' ? undefined : opts.file });
}

/**
 * Why a log file cannot be opened, in one line with the accepted form. The directory is never
 * created: a mistyped path would otherwise leave a log where nobody looks.
 */
export function logFileError(file: string, err: NodeJS.ErrnoException, what = 'log file'): InputError {
  const dir = dirname(file);
  const why: Record<string, string> = {
    ENOENT: `the directory ${quote(dir)} does not exist (ENOENT); create it first, or name a file in an existing directory`,
    ENOTDIR: `a part of the directory path ${quote(dir)} is a regular file, not a directory (ENOTDIR); name a file in an existing directory`,
    EISDIR: 'it is a directory (EISDIR); name a file, e.g. run.ndjson',
    EACCES: 'permission denied (EACCES); name a file you may write',
  };
  return new InputError('ELOGFILE', `${what}: ${quote(file)}: ${why[err.code ?? ''] ?? `${err.code ?? String(err)}; expected a writable file in an existing directory`}`);
}
