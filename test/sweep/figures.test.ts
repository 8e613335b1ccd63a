// The arithmetic on result records: medians, spreads, rows, shards, merges. Values worked out by hand.
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { FIGURES, median, rows, spreadOf } from '../../src/sweep/figures.js';
import type { RunConfig, RunRecord } from '../../src/sweep/run.js';
import { configKey, vmArgs } from '../../src/sweep/run.js';
import { mergeShards, parseShard, runId, shardOf, sweepId, writeShard } from '../../src/sweep/shard.js';
import type { RunReport } from '../../src/vm/report.js';
import { tempDir } from '../helpers/log-files.js';

const dir = tempDir('coco-sweep-test-');
afterAll(() => dir.remove());

function cfg(policy: 'static' | 'throttle', swiotlb: string, repeat: number): RunConfig {
  return { job: 'jobs/heavy.fio', vcpus: 2, mem: '1G', pool: { swiotlb }, policy, knobs: {}, seed: 7, repeat };
}

/** A report with only what the figures read, the rest left out. */
function report(full: number, hiwater: number, ios: number, runtimeMs: number): RunReport {
  return {
    jobs: [{ errors_total: full, packets_dropped: 0 }],
    groups: [{ groupid: 0, runtime_ms: runtimeMs, read: { ios, bytes: ios * 4096 } }],
    swiotlb: { io_tlb_nslabs: 4096, io_tlb_used_hiwater: hiwater, map_failures_by_cause: { full, oversize: 0, no_pool: 0, not_capable: 0, throttle_aborted: 0 } },
    throttle: { enabled: false, wait_us: { p50: 0, p90: 0, p99: 0, p999: 0 } },
    storage_clat: { ios, avg_us: 0, p50_us: 100, p90_us: 0, p99_us: 900, p999_us: 2000, max_us: 0 },
  } as unknown as RunReport;
}

function rec(c: RunConfig, status: RunRecord['status'], rep?: RunReport): RunRecord {
  return { key: configKey(c), config: c, seed: c.seed, status, exit: status === 'ok' ? 0 : 1, ...(rep ? { report: rep } : {}), stalls: status === 'stalled' ? 1 : 0, wall_ms: 1, ...(status !== 'ok' ? { reason: 'stall: no I/O completed for 15 s' } : {}) };
}

describe('spreads', () => {
  it('takes the median of odd and even counts and the range over the median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    // 5 repeats 100, 101, 99, 102, 98: median 100, range 4, spread 4%.
    expect(spreadOf([100, 101, 99, 102, 98])).toEqual({ n: 5, median: 100, min: 98, max: 102, spread: 0.04 });
    expect(spreadOf([0, 0, 0])!.spread).toBe(0);
    expect(spreadOf([0, 0, 5])!.spread).toBeNull(); // median 0, repeats differ: no ratio
    expect(spreadOf([])).toBeNull();
  });

  it('groups a configuration\'s repeats into one row and leaves stalled runs out of its figures', () => {
    const recs = [
      rec(cfg('static', '8M', 0), 'ok', report(10, 4000, 1000, 1000)),
      rec(cfg('static', '8M', 1), 'ok', report(12, 4096, 1200, 1000)),
      rec(cfg('static', '8M', 2), 'stalled'),
      rec(cfg('throttle', '8M', 0), 'ok', report(0, 2900, 900, 1000)),
    ];
    const rs = rows(recs);
    expect(rs).toHaveLength(2);
    const s = rs[0]!;
    expect(s).toMatchObject({ repeats: 3, ok: 2, stalled: 1, crashed: 0, stalls: 1 });
    expect(s.reasons).toEqual(['stalled: stall: no I/O completed for 15 s']);
    expect(s.figures['fail_full']).toEqual({ n: 2, median: 11, min: 10, max: 12, spread: 2 / 11 });
    expect(s.figures['hiwater']).toEqual({ n: 2, median: 4048, min: 4000, max: 4096, spread: 96 / 4048 });
    expect(s.figures['iops']!.median).toBe(1100); // (1000 + 1200) / 2 over 1 s each
    expect(s.figures['peak_bytes']!.median).toBe(4096 * 2048);
    expect(s.figures['throttle_wait_p99']).toBeNull(); // no throttling: no figure, not 0
    expect(rs[1]!.config.policy).toBe('throttle');
    expect(FIGURES.map((f) => f.name)).toEqual(['map_failures', 'fail_full', 'fail_oversize', 'fail_throttle_aborted', 'fail_transient', 'io_errors', 'packets_dropped',
      'hiwater', 'peak_bytes', 'iops', 'bw', 'clat_p50', 'clat_p99', 'clat_p999', 'throttle_wait_p99']);
  });

  it('turns a configuration into the VM\'s flags, the same for every repeat', () => {
    const c = { ...cfg('throttle', '8M', 3), knobs: { 'low-throttle': '60%', 'high-throttle': '70%' }, runtime: '2s' };
    expect(vmArgs(c)).toEqual(['--job', 'jobs/heavy.fio', '--vcpus', '2', '--mem', '1G', '--policy', 'throttle', '--seed', '7', '--swiotlb', '8M',
      '--runtime', '2s', '--high-throttle', '70%', '--low-throttle', '60%']);
    expect(configKey(c)).toBe(configKey({ ...c, repeat: 0 }));
    expect(vmArgs({ ...c, pool: { nslabs: 3072 } })).toContain('--exact-nslabs');
  });
});

describe('shards', () => {
  it('takes the shard from the flag, else the index from a Kubernetes or Slurm variable', () => {
    expect(parseShard('2/5', undefined)).toEqual({ index: 2, count: 5 });
    expect(parseShard(undefined, undefined)).toEqual({ index: 0, count: 1 });
    expect(parseShard(undefined, '4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parseShard(undefined, '4', { SLURM_ARRAY_TASK_ID: '1' })).toEqual({ index: 1, count: 4 });
    expect(() => parseShard('5/5', undefined)).toThrow(InputError);
    expect(() => parseShard(undefined, '4', { JOB_COMPLETION_INDEX: '4' })).toThrow(/expected 0\.\.3/);
    expect(() => parseShard(undefined, '4', {})).toThrow(/JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID/);
  });

  it('deals configurations round-robin, every one to exactly one shard', () => {
    const all = [0, 1, 2, 3, 4, 5, 6].map((i) => cfg('static', `${i + 1}M`, 0));
    const parts = [0, 1, 2].map((index) => shardOf(all, { index, count: 3 }));
    expect(parts.map((p) => p.map((c) => 'swiotlb' in c.pool && c.pool.swiotlb))).toEqual([['1M', '4M', '7M'], ['2M', '5M'], ['3M', '6M']]);
  });

  it('merges shard files in enumeration order, names what is missing, and refuses another sweep\'s file', () => {
    const all = [cfg('static', '8M', 0), cfg('static', '8M', 1), cfg('throttle', '8M', 0), cfg('throttle', '8M', 1)];
    const sweep = sweepId(all);
    const out = dir.file('merge');
    const records = all.map((c) => rec(c, 'ok', report(1, 1, 1, 1)));
    writeShard(out, { command: 'compare', sweep, shard: { index: 1, count: 3 }, configs: all, meta: {}, records: shardOf(records, { index: 1, count: 3 }) });
    writeShard(out, { command: 'compare', sweep, shard: { index: 0, count: 3 }, configs: all, meta: {}, records: shardOf(records, { index: 0, count: 3 }) });
    const m = mergeShards(out);
    expect(m.records.map((r) => runId(r.config))).toEqual([all[0]!, all[1]!, all[3]!].map(runId));
    expect(m.missing).toEqual([runId(all[2]!)]); // shard 2 of 3 never ran
    writeShard(out, { command: 'compare', sweep: 'other', shard: { index: 2, count: 3 }, configs: all, meta: {}, records: [] });
    expect(() => mergeShards(out)).toThrow(/belongs to another sweep/);
    writeFileSync(dir.file('merge/shard-2-of-3.json'), 'not json');
    expect(() => mergeShards(out)).toThrow(/is not a shard file/);
    expect(() => mergeShards(dir.file('nowhere'))).toThrow(InputError);
  });
});

describe('table cells', () => {
  it('prints the median, then the spread, or the largest repeat when the median is 0', async () => {
    const { spreadText, formatValue } = await import('../../src/sweep/compare.js');
    expect(spreadText('count', spreadOf([0, 0, 0, 2, 0])!)).toBe(' (max 2)');
    expect(spreadText('count', spreadOf([100, 101, 99, 102, 98])!)).toBe(' ±4.0%');
    expect(spreadText('count', spreadOf([7, 7])!)).toBe('');
    expect(formatValue('us', 1500)).toBe('1.50ms');
    expect(formatValue('bytes', 8 << 20)).toBe('8MiB');
  });
});

describe('figures of a run with dynamic swiotlb', () => {
  it('takes peak memory over every pool and transient-pool failures from the dynamic section', () => {
    const fig = (name: string) => FIGURES.find((f) => f.name === name)!;
    const r = { ...report(0, 100, 10, 1000), dynamic: { enabled: true, transient: { failed: 3 }, memory: { in_use_peak_bytes: 12 << 20 } } } as unknown as RunReport;
    expect(fig('peak_bytes').of(r)).toBe(12 << 20); // not the 8 MiB default pool
    expect(fig('fail_transient').of(r)).toBe(3);
    const off = { ...report(0, 100, 10, 1000), dynamic: { enabled: false } } as unknown as RunReport;
    expect(fig('peak_bytes').of(off)).toBe(4096 * 2048);
    expect(fig('fail_transient').of(off)).toBeNull();
  });
});

describe('--time-scale', () => {
  it('goes to every run when the VM has the flag, and is refused with what to do when it has not', async () => {
    const { COMPARE_FLAGS, parseSweepBase } = await import('../../src/sweep/compare.js');
    const { parseFlags } = await import('../../src/cli/flags.js');
    const { VM_FLAGS } = await import('../../src/vm/options.js');
    const f = parseFlags(['--job', 'jobs/heavy.fio', '--time-scale', '4'], COMPARE_FLAGS, 'compare');
    if (VM_FLAGS.some((s) => s.name === 'time-scale')) {
      const base = parseSweepBase(f);
      expect(base.knobs('static')).toEqual({ 'time-scale': '4' });
      expect(base.knobs('throttle')).toEqual({ 'time-scale': '4' });
    } else {
      expect(() => parseSweepBase(f)).toThrow("--time-scale: this build's VM has no --time-scale yet; drop the flag");
    }
  });
});

describe('run timeouts', () => {
  it('give a run its runtime cap times its time scale, plus the stall timeout and a minute', async () => {
    const { runTimeoutMs } = await import('../../src/sweep/compare.js');
    // .env.example: COCO_STALL_TIMEOUT=15s, COCO_RUNTIME=10s, COCO_TIME_SCALE=1.
    expect(runTimeoutMs({ ...cfg('static', '8M', 0), runtime: '2s', knobs: { 'time-scale': '10' } })).toBe(2000 * 10 + 15_000 + 60_000);
    expect(runTimeoutMs(cfg('static', '8M', 0))).toBe(10_000 + 15_000 + 60_000);
  });
});
