// End to end: `npm run compare` as users run it. A sweep run as separate processes, one per shard
// (one shard told its index by JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job would), merged,
// against the same sweep unsharded; the merged page rendered in headless Chromium; and a crashed and a
// stalled configuration costing their own rows only.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompareDocument } from '../../src/sweep/compare.js';
import { rows } from '../../src/sweep/figures.js';
import { type RunConfig, type RunRecord, runConfigs } from '../../src/sweep/run.js';
import { type ChromiumLookup, findOrInstallChromium, visitFile } from '../helpers/chromium.js';
import { tempDir } from '../helpers/log-files.js';
import { type ScriptResult, scriptProcess } from '../helpers/vm-process.js';

const dir = tempDir('coco-compare-test-');
const job = dir.file('tiny.fio');

function compare(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ScriptResult> {
  return scriptProcess('compare', args, { env });
}

// Two policies x one size x two repeats, one vCPU, 300 ms each: four runs per sweep.
const SWEEP = ['--job', job, '--vcpus', '1', '--mem', '1G', '--sizes', '1M', '--policies', 'static,throttle', '--repeat', '2', '--runtime', '300ms', '--seed', '5'];

let unsharded: CompareDocument;
let merged: CompareDocument;
let mergedText: string;
const html = dir.file('compare.html');

beforeAll(async () => {
  writeFileSync(job, '[t]\nrw=randrw\nbssplit=64k/50:256k/50\niodepth=8\nnumjobs=1\ntime_based\nruntime=300ms\nsize=4M\n');
  const out = dir.file('shards');
  const [a, b, c] = await Promise.all([
    compare([...SWEEP, '--output-format', 'json']),
    compare([...SWEEP, '--shard', '0/2', '--out', out, '--output-format', 'json']),
    compare([...SWEEP, '--shards', '2', '--out', out, '--output-format', 'json'], { JOB_COMPLETION_INDEX: '1' }),
  ]);
  for (const r of [a, b, c]) expect(r.stderr, r.stderr).toBe('');
  unsharded = JSON.parse(a.stdout) as CompareDocument;
  expect((JSON.parse(b.stdout) as CompareDocument).runs).toHaveLength(2);
  expect((JSON.parse(c.stdout) as CompareDocument).runs).toHaveLength(2);
  const m = await compare(['--merge', out, '--output-format', 'json', '--html', html]);
  expect(m.stderr).toBe('');
  expect(m.code).toBe(0);
  merged = JSON.parse(m.stdout) as CompareDocument;
  mergedText = (await compare(['--merge', out])).stdout;
}, 240_000);
afterAll(() => dir.remove());

describe('npm run compare', () => {
  it('gives a merged sweep the configurations and seeds of the unsharded run, in the same order', () => {
    const ids = (d: CompareDocument) => d.runs.map((r) => [r.id, r.seed, r.status]);
    expect(unsharded.runs).toHaveLength(4);
    expect(ids(merged)).toEqual(ids(unsharded));
    expect(merged.rows.map((r) => r.key)).toEqual(unsharded.rows.map((r) => r.key));
    expect(merged.rows.map((r) => r.config.policy)).toEqual(['static', 'throttle']);
    for (const r of merged.rows) {
      expect(r.repeats).toBe(2);
      expect(r.config.seed).toBe(5);
      expect(r.figures['hiwater']!.n).toBe(2);
      // A 1 MiB pool has 512 slots; the high-water mark cannot exceed it.
      expect(r.figures['hiwater']!.max).toBeLessThanOrEqual(512);
      expect(r.figures['peak_bytes']!.median).toBe(1 << 20);
    }
    expect(merged.rows[1]!.figures['throttle_wait_p99']).not.toBeNull();
    expect(merged.rows[0]!.figures['throttle_wait_p99']).toBeNull();
    expect(merged.missing).toEqual([]);
  });

  it('prints one table with a row per configuration', () => {
    const lines = mergedText.split('\n');
    expect(lines[0]).toBe(`compare: ${job}, 1 vCPUs, 1G, seed 5, runtime 300ms, 2 repeats each`);
    expect(lines[1]).toMatch(/^ {2}policy +pool +runs +fail +full +oversize +thr\.abort +transient +io_err +drops +hiwater +peak mem +IOPS +BW +p50 +p99 +p99\.9 +wait p99 +stalls$/);
    expect(lines[2]).toMatch(/^ {2}static +1M +2\/2 /);
    expect(lines[3]).toMatch(/^ {2}throttle +1M +2\/2 /);
  });

  it('names the runs a merge is missing, and exits 1', async () => {
    // Shard 1 of 2 alone: its two runs merged, shard 0's named missing.
    const out = dir.file('partial');
    mkdirSync(out);
    copyFileSync(dir.file('shards/shard-1-of-2.json'), join(out, 'shard-1-of-2.json'));
    const m = await compare(['--merge', out]);
    expect(m.code).toBe(1);
    expect(m.stdout).toContain('Missing from the merge (2 runs no shard file holds):');
    expect(m.stdout).toContain(`  policy=static swiotlb=1M vcpus=1 mem=1G job=${job} runtime=300ms seed=5 repeat=0\n`);
    expect(m.stdout).toContain(`  policy=throttle swiotlb=1M vcpus=1 mem=1G job=${job} runtime=300ms seed=5 repeat=0\n`);
  });

  it('refuses a policy this build cannot run, and bad flags, with one line and exit 2', async () => {
    const r = await compare(['--job', job, '--policies', 'static,grow']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('compare: --policies: "grow" is not valid; expected one of static, throttle, dynamic, hybrid, cma\n');
    const s = await compare(['--job', job, '--shard', '1/2']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/--shard needs --out DIR/);
    expect((await compare(['--sizes', '1M'])).stderr).toMatch(/--job FILE is required/);
  });
});

describe('the run driver', () => {
  it('reports a crashed and a stalled configuration in their own records while the others run', async () => {
    const base: RunConfig = { job, vcpus: 1, mem: '1G', pool: { swiotlb: '1M' }, policy: 'static', knobs: {}, seed: 1, runtime: '300ms', repeat: 0 };
    const configs: RunConfig[] = [
      { ...base, knobs: { 'inject-fault': 'vcpu0@50ms' } },
      // A device that completes nothing within the stall timeout: the VM's no-progress stall.
      { ...base, runtime: '2s', knobs: { 'nvme-latency': '20s', 'stall-timeout': '500ms' } },
      base,
    ];
    const recs = await runConfigs(configs, 2, { timeoutMs: 60_000 });
    expect(recs.map((r) => r.status)).toEqual(['crashed', 'stalled', 'ok']);
    expect(recs[0]!.reason).toBe('vcpu0 failed: vcpu0: injected fault (--inject-fault) after 50 ms');
    expect(recs[0]!.exit).toBe(1);
    expect(recs[1]!.reason).toMatch(/^stall: no I\/O completed for \d+ s with io_tlb_used \d+ of 512 slots$/);
    expect(recs[1]!.stalls).toBeGreaterThanOrEqual(1);
    const rep = recs[2]!.report!;
    expect(rep.swiotlb.io_tlb_nslabs).toBe(512);
    expect(rep.swiotlb.map_attempts).toBeGreaterThan(0);
    // The latency every comparison reads covers every storage request, reads and writes.
    expect(rep.storage_clat.ios).toBe(rep.jobs.reduce((n, j) => n + (j.read?.ios ?? 0) + (j.write?.ios ?? 0), 0));
    expect(rep.storage_clat.ios).toBeGreaterThan(0);
    const rs = rows(recs);
    expect(rs.map((r) => [r.ok, r.stalled, r.crashed])).toEqual([[0, 0, 1], [0, 1, 0], [1, 0, 0]]);
    expect(rs[0]!.figures['hiwater']).toBeNull();
  }, 120_000);

  it('kills a run that outlives its time and reports it stalled', async () => {
    // The job's own runtime is 30 s (the shared tiny job's 300 ms would end before the limit on a
    // quiet host: --runtime only caps a job's runtime).
    const long = dir.file('long.fio');
    writeFileSync(long, '[t]\nrw=randread\nbs=64k\niodepth=8\ntime_based\nruntime=30s\nsize=4M\n');
    const c: RunConfig = { job: long, vcpus: 1, mem: '1G', pool: { swiotlb: '1M' }, policy: 'static', knobs: {}, seed: 1, runtime: '30s', repeat: 0 };
    const [r] = await runConfigs([c], 1, { timeoutMs: 1500 });
    expect(r!.status).toBe('stalled');
    expect(r!.reason).toBe('no report within 2 s; the VM was killed');
  }, 60_000);
});

describe('the comparison page', () => {
  let browser: ChromiumLookup;
  beforeAll(() => {
    browser = findOrInstallChromium();
  }, 16 * 60_000);

  it('is self-contained and draws every configuration\'s timeline and a bar chart per figure in headless Chromium', async (ctx) => {
    const text = readFileSync(html, 'utf8');
    expect(text).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/i);
    if (browser.path === undefined) {
      ctx.skip(`Chromium unavailable: ${browser.why}`); // allowed: skipped only when Chromium cannot be installed
      return;
    }
    await visitFile(browser.path, html, async (page, visit) => {
      const drawn = await page.evaluate<{ timelines: number; timelinePoints: Record<string, number>; bars: Record<string, number>; canvases: number }>(
        `(() => Object.assign({}, window.cocoCompare, { canvases: document.querySelectorAll('canvas').length }))()`);
      expect(visit.errors).toEqual([]);
      expect(visit.network).toEqual([]);
      expect(drawn.timelines).toBe(2);
      for (const label of ['static 1M', 'throttle 1M']) expect(drawn.timelinePoints[label], label).toBeGreaterThan(0);
      expect(drawn.bars['hiwater']).toBe(2);
      expect(drawn.bars['throttle_wait_p99']).toBe(1); // static has no wait figure
      expect(Object.keys(drawn.bars)).toHaveLength(merged.figures.length);
      expect(drawn.canvases).toBe(1 + merged.figures.length);
    });
  }, 60_000);
});

describe('a run the VM refuses', () => {
  it('stops the sweep at the first refusal with the VM\'s own line, exit 2', async () => {
    // "soon" is not a latency the VM accepts: every run would be refused alike.
    const base: RunConfig = { job, vcpus: 1, mem: '1G', pool: { swiotlb: '1M' }, policy: 'static', knobs: { 'nvme-latency': 'soon' }, seed: 1, runtime: '300ms', repeat: 0 };
    const recs = await runConfigs([base, { ...base, repeat: 1 }, { ...base, repeat: 2 }], 1, { timeoutMs: 60_000 });
    expect(recs).toHaveLength(1);
    expect(recs[0]!.status).toBe('input-error');
    expect(recs[0]!.exit).toBe(2);
    expect(recs[0]!.reason).toMatch(/^--nvme-latency: "soon" is not/);
  }, 60_000);
});

describe('a dynamic swiotlb run', () => {
  it('reads peak memory over every pool from the report\'s dynamic section', async () => {
    const c: RunConfig = { job, vcpus: 2, mem: '1G', pool: { swiotlb: '512K' }, policy: 'dynamic', knobs: {}, seed: 1, runtime: '500ms', repeat: 0 };
    const [r] = await runConfigs([c], 1, { timeoutMs: 60_000 });
    expect(r!.status, r!.reason).toBe('ok');
    const rep = r!.report! as RunRecord['report'] & { dynamic: { enabled: boolean; memory: { in_use_peak_bytes: number; static_pool_bytes: number } } };
    expect(rep.dynamic.enabled).toBe(true);
    const row = rows([r!])[0]!;
    expect(row.figures['peak_bytes']!.median).toBe(rep.dynamic.memory.in_use_peak_bytes);
    expect(row.figures['peak_bytes']!.median).toBeGreaterThanOrEqual(rep.dynamic.memory.static_pool_bytes);
    expect(row.figures['fail_transient']).not.toBeNull();
  }, 60_000);
});
