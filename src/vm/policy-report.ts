// The report's policy section: which policy ran (mainline, RFC or proposal, and whose), and the
// figures of the policies that have their own (hybrid's timed waits and synchronous growths). The
// throttle and dynamic sections (report.ts) keep the figures those policies share with this one.
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import { formatBytes } from '../util/units.js';
import type { CmaStats } from '../memory/cma.js';
import { POLICIES, type PolicyName } from './policy.js';
import type { ThrottleReport } from './report.js';
import type { VmRunResult } from './vm.js';

export interface HybridReport {
  /** --hybrid-timeout, ms of the run's clock. */
  timeout_ms: number;
  /** MAY_BLOCK maps that waited on throttle_sem (the throttle section's waits), and their wait time. */
  waits: number;
  wait_us: ThrottleReport['wait_us'];
  wait_us_max: number;
  /** Waits that reached the timeout (the rest were granted the semaphore in time, or aborted). */
  timeouts: number;
  /** Pools grown by the mapping threads whose wait timed out (DynamicSwiotlb.addPool from a vCPU). */
  sync_grows: {
    count: number; bytes: number; failed: number;
    /** Timeouts that did not grow: io_tlb_nslabs had grown while they waited. */
    skipped: number;
    /** Time a synchronous growth took (the map that grew waited this on top of its timeout). */
    ms_avg: number; ms_max: number;
  };
}

export interface PolicyReport {
  name: PolicyName;
  status: 'mainline' | 'RFC' | 'proposal';
  source: string;
  /** [proposal] --policy hybrid only. */
  hybrid?: HybridReport;
  /** [proposal] --policy cma only: the CMA area (memory/cma.ts); its whole size counts in the dynamic section's memory figures. */
  cma?: CmaStats;
}

const ms3 = (v: number): number => Math.round(v * 1000) / 1000;

export function policyReport(r: VmRunResult, thr: ThrottleReport): PolicyReport {
  const spec = POLICIES[r.boot.policy];
  const out: PolicyReport = { name: spec.name, status: spec.status, source: spec.source };
  const h = r.boot.mem.hybrid;
  if (h !== null) {
    const st = h.stats();
    out.hybrid = {
      timeout_ms: st.timeout_ms, waits: thr.waits, wait_us: thr.wait_us, wait_us_max: thr.wait_us_max, timeouts: st.timeouts,
      sync_grows: {
        count: st.sync_grows, bytes: st.sync_grow_bytes, failed: st.sync_grow_failed, skipped: st.sync_grow_skipped,
        ms_avg: ms3(st.sync_grow_ms_avg), ms_max: ms3(st.sync_grow_ms_max),
      },
    };
  }
  if (r.boot.cma !== null) out.cma = r.boot.cma.stats();
  return out;
}

export function formatPolicy(p: PolicyReport): string[] {
  const out = [`  policy: ${p.name} (${p.status}: ${p.status === 'mainline' ? p.source : p.source.replace(/:.*$/, '')})`];
  const h = p.hybrid;
  if (h !== undefined) {
    const g = h.sync_grows;
    out.push(
      `    hybrid [proposal]: timeout ${h.timeout_ms}ms; waits ${h.waits} (p50 ${h.wait_us.p50}us, p99 ${h.wait_us.p99}us, max ${h.wait_us_max}us), timeouts ${h.timeouts}; synchronous grows ${g.count} (${formatBytes(g.bytes)}, ${g.bytes / IO_TLB_SIZE} slots), failed ${g.failed}, skipped ${g.skipped} (the pool grew during the wait); a grow took avg ${g.ms_avg.toFixed(2)}ms max ${g.ms_max.toFixed(2)}ms`,
    );
  }
  const c = p.cma;
  if (c !== undefined) {
    out.push(
      `    cma [proposal]: ${formatBytes(c.bytes)} reserved at boot below 4 GiB (counted as committed), ${formatBytes(c.pool_bytes)} given to pools in ${c.allocs} allocations, ${c.alloc_failures} failed; movable pages lent now ${c.lent_pages} (${c.lent_total} borrows), migrated out for pools ${c.migrated_pages} (cost modelled as 0)`,
    );
  }
  return out;
}
