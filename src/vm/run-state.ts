// What the main thread reads about the running workload, from the instance statistics in shared
// memory (jobs.ts I_*), at one instant: the cumulative counters every sample carries, and the run's
// phase. Reading the counters here, rather than asking each vCPU over the control plane, gives every
// sample one time for all its counters, so rates computed between two samples are exact.
import { I_DROPS, I_END_MS, I_READ_BYTES, I_READ_ERRORS, I_READ_IOS, I_START_MS, I_WRITE_BYTES, I_WRITE_ERRORS, I_WRITE_IOS, INST_FIELDS, type JobInstance } from './jobs.js';

/** Cumulative counters of every job instance, summed. */
export interface WorkloadCounters {
  /** I/Os completed after each instance's ramp (reads + writes + packets), as the report counts them. */
  ios: number;
  /** Bytes those I/Os moved. */
  bytes: number;
  /** Storage requests that completed with an error (the report's err=). */
  io_errors: number;
  /** Packets the NIC dropped. */
  packets_dropped: number;
}

/** Sum the counters over `instances` instances of the shared statistics (one plain read of each word). */
export function workloadCounters(stats: Float64Array, instances: number): WorkloadCounters {
  const c: WorkloadCounters = { ios: 0, bytes: 0, io_errors: 0, packets_dropped: 0 };
  for (let id = 0; id < instances; id++) {
    const b = id * INST_FIELDS;
    c.ios += stats[b + I_READ_IOS]! + stats[b + I_WRITE_IOS]!;
    c.bytes += stats[b + I_READ_BYTES]! + stats[b + I_WRITE_BYTES]!;
    c.io_errors += stats[b + I_READ_ERRORS]! + stats[b + I_WRITE_ERRORS]!;
    c.packets_dropped += stats[b + I_DROPS]!;
  }
  return c;
}

/** A rate over the interval between two readings of a cumulative counter; 0 for an empty interval. */
export function ratePerSec(before: number, after: number, dtMs: number): number {
  return dtMs > 0 ? ((after - before) * 1000) / dtMs : 0;
}

/**
 * The run's phases, in order: boot (threads starting, until the start barrier), then each job's
 * startdelay and ramp_time, then I/O that counts (running), then teardown (the vCPUs told to stop or
 * finished, the threads being stopped).
 */
export const RUN_PHASES = ['boot', 'startdelay', 'ramp', 'running', 'teardown'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

/**
 * The planned length of the run from the start barrier, in ms: stonewall groups one after the other,
 * each as long as its longest clone's startdelay + ramp_time + runtime. A job that is not time based
 * may end sooner (when its size is done), so this bounds the run; Infinity when a runtime is unbounded.
 */
export function plannedRunMs(instances: readonly JobInstance[]): number {
  const byGroup = new Map<number, number>();
  for (const i of instances) {
    const len = i.startdelayMs + i.rampTimeMs + i.runtimeMs;
    byGroup.set(i.group, Math.max(byGroup.get(i.group) ?? 0, len));
  }
  let total = 0;
  for (const len of byGroup.values()) total += len;
  return total;
}

/** Whether every instance runs for its runtime (time_based), so that plannedRunMs is the run's length. */
export function plannedIsExact(instances: readonly JobInstance[]): boolean {
  return instances.every((i) => i.timeBased);
}

/**
 * The phase of the run at `nowMs` (the shared clock, util/clock.ts) while the vCPUs run, from each
 * instance's start and end stamps (I_START_MS is the end of its ramp, 0 until it starts; I_END_MS is
 * 0 until it finishes): running when any instance does I/O that counts, else ramp when any is in its
 * ramp, else startdelay (waiting for its delay or for an earlier stonewall group); teardown once
 * every instance has finished.
 */
export function workloadPhase(stats: Float64Array, instances: readonly JobInstance[], nowMs: number): Exclude<RunPhase, 'boot'> {
  let ramp = false;
  let live = 0;
  for (const inst of instances) {
    const b = inst.id * INST_FIELDS;
    if (stats[b + I_END_MS]! > 0) continue;
    live++;
    const countsFrom = stats[b + I_START_MS]!;
    if (countsFrom === 0) continue; // not started: its delay or its group's turn is still ahead
    if (nowMs >= countsFrom) return 'running';
    if (nowMs >= countsFrom - inst.rampTimeMs) ramp = true;
  }
  return ramp ? 'ramp' : live > 0 ? 'startdelay' : 'teardown';
}
