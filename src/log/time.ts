// The `time` of every log record, main thread and workers alike: the run's one clock (util/clock.ts
// nowMs, the same in every thread; the samples and the run's start use it too), in whole ms since
// the epoch as pino's default writes it, so pino-pretty and the analyzer read it unchanged.
import { nowMs } from '../util/clock.js';

/** pino's `timestamp` option. */
export const pinoTimestamp = (): string => `,"time":${Math.round(nowMs())}`;
