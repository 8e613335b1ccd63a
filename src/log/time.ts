// The `time` of every log record, main thread and workers alike: the run's one clock (util/clock.ts
// nowMs, the same in every thread; the samples and the run's start use it too), in ms since the
// epoch as pino writes it, to the microsecond: records of two threads within one millisecond then
// keep their order in the file (whole ms tied them, and a tie had to be broken by arrival). pino-pretty
// and the analyzer read a fractional time unchanged.
import { nowMs } from '../util/clock.js';

/** pino's `timestamp` option. */
export const pinoTimestamp = (): string => `,"time":${Math.round(nowMs() * 1000) / 1000}`;
