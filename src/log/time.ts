// The `time` of every log record, main thread and workers alike: one clock in every thread
// (util/clock.ts wallMs: the host's time, so pino-pretty shows the wall clock even under
// --time-scale, where the run's clock, nowMs, runs K times slower; the run_start record gives K and
// the analyzer turns times since run_start into run time), in ms since the epoch as pino writes it,
// to the microsecond: records of two threads within one millisecond then
// keep their order in the file (whole ms tied them, and a tie had to be broken by arrival). pino-pretty
// and the analyzer read a fractional time unchanged.
import { wallMs } from '../util/clock.js';

/** pino's `timestamp` option. */
export const pinoTimestamp = (): string => `,"time":${Math.round(wallMs() * 1000) / 1000}`;
