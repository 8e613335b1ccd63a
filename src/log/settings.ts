// The log's settings from .env.example / the environment, validated once, naming the variable.
import { configValue, envOrigin } from '../config.js';
import { parseDuration, parseIntInRange, parseSize } from '../util/units.js';
import { InputError } from '../errors.js';
import { MAX_RING_BYTES, MIN_RING_BYTES } from './ring.js';

export interface LogSettings {
  /** Bytes of shared memory per worker channel (rounded up to a power of two). */
  ringBytes: number;
  /** How often the main thread drains the rings and writes the log. */
  drainIntervalMs: number;
  /** Longest a worker waits for room in a full ring before dropping a record. */
  fullWaitMs: number;
}

export function logSettings(): LogSettings {
  const ringBytes = parseSize(configValue('COCO_LOG_RING_SIZE'), envOrigin('COCO_LOG_RING_SIZE'));
  if (ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES) {
    throw new InputError('EBADSIZE', `${envOrigin('COCO_LOG_RING_SIZE')}: ${ringBytes} bytes is out of range; expected 4K to 1G`);
  }
  const drainIntervalMs = parseDuration(configValue('COCO_LOG_DRAIN_INTERVAL'), envOrigin('COCO_LOG_DRAIN_INTERVAL'));
  if (!(drainIntervalMs >= 1 && drainIntervalMs <= 10_000)) {
    throw new InputError('EBADDURATION', `${envOrigin('COCO_LOG_DRAIN_INTERVAL')}: expected 1ms to 10s`);
  }
  const fullWaitMs = parseDuration(configValue('COCO_LOG_FULL_WAIT'), envOrigin('COCO_LOG_FULL_WAIT'));
  if (!(fullWaitMs >= 0 && fullWaitMs <= 600_000)) {
    throw new InputError('EBADDURATION', `${envOrigin('COCO_LOG_FULL_WAIT')}: expected 0 to 10m`);
  }
  return { ringBytes, drainIntervalMs, fullWaitMs };
}

/** Points in the HTML report's chart. */
export function chartPointsSetting(): number {
  return parseIntInRange(configValue('COCO_ANALYZE_CHART_POINTS'), envOrigin('COCO_ANALYZE_CHART_POINTS'), 50, 100_000);
}
