// Replays a list of records through a WorkerLogger: the body of workers/log-emitter.ts, used by tests
// and the fixture generator to exercise the worker side of the log with the real API.
import type { EventFields, EventName } from './events.js';
import type { LogChannel } from './logger.js';
import type { WorkerLogBinding, WorkerLogger } from './worker-logger.js';

/** One record to emit: a catalogue event and its fields. */
export type AnyEvent = { [E in EventName]: { event: E; fields: EventFields[E] } }[EventName];

export interface EmitterJob {
  channel: LogChannel;
  bind?: WorkerLogBinding;
  events: AnyEvent[];
  /** Emit the list this many times (default 1). */
  repeat?: number;
  /** After emitting (and flushing), throw an Error with this message: an uncaught worker error. */
  throwAfter?: string;
  /** Close the channel when done (default true). */
  close?: boolean;
  /** Keep running and take more batches by message (EmitterMessage) until one says finish. */
  stay?: boolean;
  /** Do not wait for the main thread to drain before reporting (default false: wait). */
  noFlush?: boolean;
}

/** A further batch for a worker started with `stay`. */
export interface EmitterMessage {
  events?: AnyEvent[];
  /** Flush, close the channel and end the worker after this batch. */
  finish?: boolean;
}

/** Emit the job's records in order; returns how many were emitted. */
export async function runEmitterJob(log: WorkerLogger, job: EmitterJob): Promise<number> {
  const repeat = job.repeat ?? 1;
  let n = 0;
  for (let r = 0; r < repeat; r++) {
    for (const e of job.events) {
      emitAny(log, e);
      n++;
    }
  }
  if (job.noFlush !== true) await log.flush();
  if (job.close !== false && job.stay !== true) log.close();
  return n;
}

/** emit() for a record whose event name is only known at run time. */
export function emitAny(log: { emit<E extends EventName>(event: E, fields: EventFields[E]): void }, e: AnyEvent): void {
  (log.emit as (event: EventName, fields: unknown) => void).call(log, e.event, e.fields);
}
