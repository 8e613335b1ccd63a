// npm run bench:vm: the VM's own targets, measured on the compiled `vm` command as a user runs it.
// - the VM against its core: jobs/randrw-4k.fio at 4 and 32 vCPUs, the map+unmap pairs per second
//   the VM sustained, over the core's 4 KiB bounce rate at the same thread count (coreBounceRate, the
//   `npm run bench` rows) measured in the same run, next to it, RATIO_REPS times alternated (core,
//   VM, core, VM ...), so that the host's load hits both alike; median and spread. Target >= 25%.
//   Also what the device threads cost: their loop passes per command (one clock read each), and the
//   process's CPU per pair, with what it allows with every core of the host busy.
// - boot: 32 vCPUs with a 1 GiB pool, from the start of boot until every vCPU waits at the start
//   barrier (the report's run.boot_ms); median of BOOT_RUNS runs. Target < 1.5 s.
// - a 10 s run on 32 vCPUs: the process's wall time, start to exit. Target < 12 s.
// - scaling: boot time, peak RSS and CPU (boot, and per second of run) of the default workload at
//   8, 32, 64 and 128 vCPUs with a 64 MiB and a 1 GiB pool.
// `--against DIR` (a built checkout of another version, e.g. main before a change): its `vm` runs
// the same ratio rows, alternated with this one's in the same run (before and after).
// - idle: what a device costs with nothing to do. jobs/randrw-4k.fio keeps nvme0 busy and sends eth0
//   no command at all: each device thread's own CPU (the report's run.device_threads, the host's
//   per-thread figure) per second of its life, IDLE_REPS times alternated with --against's build.
// `--only ratio`, `--only idle` or `--only scaling` measures one part.
// Not part of `npm test`: these are timings.
import { quote } from '../src/util/quote.js';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { BENCH_WINDOW, coreBounceRate } from '../src/bench/core-bench.js';
import { runVmJson as vm } from '../src/bench/vm-run.js';
import { parseFlags } from '../src/cli/flags.js';
import { InputError } from '../src/errors.js';
import { runMain } from '../src/cli/main.js';
import { configValue, envOrigin } from '../src/config.js';
import { parseDurationInRange } from '../src/util/units.js';
import { projectRoot } from '../src/util/worker-file.js';
import type { RunReport } from '../src/vm/report.js';
import { parseVmOptions } from '../src/vm/options.js';
import { readFioJobFile } from '../src/workload/fio.js';

const BOOT_RUNS = 3;
const RATIO_JOB = join(projectRoot(), 'jobs', 'randrw-4k.fio');
const RATIO_VCPUS = [4, 32];
const RATIO_REPS = 3;
const RATIO_RUNTIME = '3s';
const RATIO_TARGET = 0.25;
const IDLE_VCPUS = 4;
const IDLE_REPS = 3;
const IDLE_RUNTIME = '3s';
const SCALE_VCPUS = [8, 32, 64, 128];
const SCALE_POOLS = ['64M', '1G'];
const SCALE_RUNTIME = '1s';

interface ScalingRow {
  vcpus: number; pool: string; boot_ms: number; max_rss_mib: number; cpu_boot_ms: number; cpu_ms_per_run_s: number; pairs_per_s: number;
}

const progress = (what: string): void => {
  if (process.stderr.isTTY) process.stderr.write(`  ${what}\n`);
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), [
    { name: 'against', kind: 'string', form: 'DIR', default: 'none', help: 'a built checkout whose vm runs the ratio rows too, alternated (before/after)' },
    { name: 'only', kind: 'string', form: 'ratio|idle|scaling', default: 'every row', help: 'ratio (the VM-over-core rows), idle (an idle device\'s CPU) or scaling (the scaling rows)' },
  ], 'bench:vm', 'The VM\'s timings and its cost over the core: boot, a 10 s run\'s wall time, map+unmap pairs/s, scaling; the core window is COCO_BENCH_SECONDS.');
  const only = flags.get('only');
  if (only !== undefined && only !== 'ratio' && only !== 'idle' && only !== 'scaling') throw new InputError('EBADFLAG', `--only: ${quote(only)} is not valid; expected ratio, idle or scaling`);
  const builds: { name: string; script: string | undefined }[] = [{ name: 'this', script: undefined }];
  const against = flags.get('against');
  if (against !== undefined) {
    const script = join(against, 'dist', 'scripts', 'vm.js');
    if (!existsSync(script)) throw new InputError('EBADFLAG', `--against: ${quote(against)} has no dist/scripts/vm.js; expected a built checkout (npm run build there)`);
    builds.push({ name: 'against', script });
  }
  const seconds = parseDurationInRange(configValue('COCO_BENCH_SECONDS'), envOrigin('COCO_BENCH_SECONDS'), BENCH_WINDOW) / 1000;

  // An idle device's cost, alternated.
  if (only === 'idle') {
    const idle = await idleRows(builds);
    console.log(JSON.stringify({ bench: 'vm', idle }));
    return 0;
  }

  // The VM against its core, alternated.
  const ratioRows = [];
  for (const vcpus of only === 'scaling' ? [] : RATIO_VCPUS) {
    const reps = [];
    for (let i = 0; i < RATIO_REPS; i++) {
      progress(`core, ${vcpus} threads (${i + 1}/${RATIO_REPS})`);
      const core = await coreBounceRate(vcpus, seconds);
      for (const b of builds) {
        progress(`vm (${b.name}), jobs/randrw-4k.fio, ${vcpus} vCPUs (${i + 1}/${RATIO_REPS})`);
        const { report } = await vm(['--vcpus', String(vcpus), '--job', RATIO_JOB, '--runtime', RATIO_RUNTIME], b.script);
        const pairs = report.swiotlb.map_unmap_per_sec;
        // An older build's report may lack the cost fields: NaN, printed as '-'.
        const r = report.run as Partial<RunReport['run']> & RunReport['run'];
        reps.push({
          build: b.name, core_pairs_per_s: Math.round(core), vm_pairs_per_s: pairs, ratio: pairs / core, cpu_us_per_pair: NaN,
          device_passes_per_command: (r.device_passes ?? NaN) / Math.max(1, r.device_commands),
          cpu_ms_per_run_s: ((r.cpu_ms ?? NaN) - (r.cpu_boot_ms ?? NaN)) / (r.run_ms / 1000),
        });
        // The process's CPU (every thread: vCPUs, devices, main) per pair sustained.
        const last = reps[reps.length - 1]!;
        last.cpu_us_per_pair = (last.cpu_ms_per_run_s * 1000) / pairs;
      }
    }
    for (const b of builds) {
      const mine = reps.filter((r) => r.build === b.name);
      ratioRows.push({ vcpus, build: b.name, ratio_median: median(mine.map((r) => r.ratio)), reps: mine });
    }
  }
  const met = (ok: boolean | undefined) => (ok ? '  (target met)' : '  (TARGET MISSED)');
  const ratioTarget = (r: { vcpus: number }) => `vm_over_core_${r.vcpus}`;
  const num = (x: number, digits: number) => (Number.isNaN(x) ? '-' : x.toFixed(digits));
  if (only !== 'scaling') console.log(`jobs/randrw-4k.fio (${RATIO_RUNTIME}) against the core's 4 KiB bounce at the same thread count (${seconds} s windows), alternated ${RATIO_REPS}x:`);
  for (const r of ratioRows) {
    const tag = builds.length > 1 ? ` [${r.build}]` : '';
    for (const x of r.reps) {
      console.log(`  ${String(r.vcpus).padStart(3)} vCPUs${tag}  vm ${fmt(x.vm_pairs_per_s).padStart(9)} pairs/s  core ${fmt(x.core_pairs_per_s).padStart(10)}  ratio ${(x.ratio * 100).toFixed(1).padStart(5)}%  device passes/command ${num(x.device_passes_per_command, 2)}  CPU ${num(x.cpu_ms_per_run_s, 0)} ms per run s, ${num(x.cpu_us_per_pair, 1)} us per pair`);
    }
    const rs = r.reps.map((x) => x.ratio);
    console.log(`  ${String(r.vcpus).padStart(3)} vCPUs${tag}  vm/core median ${(r.ratio_median * 100).toFixed(1)}% (${(Math.min(...rs) * 100).toFixed(1)}-${(Math.max(...rs) * 100).toFixed(1)}%)${r.build === 'this' ? met(r.ratio_median >= RATIO_TARGET) : ''}`);
  }
  // What the device model itself allows this job (the VM's default NVMe): one channel of `bandwidth`
  // bytes/s, `latency` after each transfer, numjobs x iodepth in flight; one map+unmap pair per I/O.
  const model = parseVmOptions([]);
  const job = readFioJobFile(RATIO_JOB).jobs[0]!;
  const bs = job.bs.read.kind === 'fixed' ? job.bs.read.bytes : NaN;
  const inflight = job.iodepth * job.numjobs;
  const ceiling = Math.min(model.nvmeBandwidth / bs, inflight / (model.nvmeLatencyUs / 1e6 + bs / model.nvmeBandwidth));
  if (only !== 'scaling') {
    console.log(`  the device model's own ceiling for this job: ${fmt(ceiling)} pairs/s (${inflight} in flight, ${bs} B at ${fmt(model.nvmeBandwidth)} B/s, ${model.nvmeLatencyUs} us latency)`);
    for (const v of RATIO_VCPUS) {
      const cores = ratioRows.filter((r) => r.vcpus === v && r.build === 'this').flatMap((r) => r.reps.map((x) => x.core_pairs_per_s));
      console.log(`  ${String(v).padStart(3)} vCPUs  ceiling/core median ${((ceiling / median(cores)) * 100).toFixed(1)}%: the most the ratio can read with this device model`);
    }
    // What the VM's own CPU cost allows on this host: every core busy at the measured CPU per pair.
    const ncores = availableParallelism();
    for (const r of ratioRows) {
      const us = median(r.reps.map((x) => x.cpu_us_per_pair));
      const cores = r.reps.map((x) => x.core_pairs_per_s);
      const most = (ncores * 1e6) / us;
      const tag = builds.length > 1 ? ` [${r.build}]` : '';
      console.log(`  ${String(r.vcpus).padStart(3)} vCPUs${tag}  CPU per pair median ${num(us, 1)} us: on ${ncores} cores at most ${fmt(most)} pairs/s, ${num((most / median(cores)) * 100, 1)}% of the core (all cores busy, measured cost)`);
    }
  }
  const ratioTargets = Object.fromEntries(ratioRows.filter((r) => r.build === 'this').map((r) => [ratioTarget(r), r.ratio_median >= RATIO_TARGET]));
  if (only === 'ratio') {
    console.log(JSON.stringify({ bench: 'vm', vm_over_core: ratioRows, targets: ratioTargets }));
    return 0;
  }

  const idle = only === 'scaling' ? [] : await idleRows(builds);

  const boots: number[] = [];
  for (let i = 0; i < (only === 'scaling' ? 0 : BOOT_RUNS); i++) {
    progress(`boot, 32 vCPUs, 1 GiB (${i + 1}/${BOOT_RUNS})`);
    const { report } = await vm(['--vcpus', '32', '--swiotlb', '1G', '--runtime', '500ms']);
    boots.push(report.run.boot_ms);
  }
  const bootMs = boots.length > 0 ? median(boots) : NaN;
  if (only !== 'scaling') progress('10 s run, 32 vCPUs');
  const ten = only === 'scaling' ? null : await vm(['--vcpus', '32', '--swiotlb', '1G', '--runtime', '10s']);

  const scaling: ScalingRow[] = [];
  for (const pool of SCALE_POOLS) {
    for (const vcpus of SCALE_VCPUS) {
      progress(`scaling: ${vcpus} vCPUs, ${pool} pool`);
      const { report } = await vm(['--vcpus', String(vcpus), '--swiotlb', pool, '--runtime', SCALE_RUNTIME]);
      const r = report.run;
      scaling.push({
        vcpus, pool, boot_ms: r.boot_ms, max_rss_mib: Math.round(r.max_rss_bytes / 2 ** 20), cpu_boot_ms: r.cpu_boot_ms,
        cpu_ms_per_run_s: Math.round((r.cpu_ms - r.cpu_boot_ms) / (r.run_ms / 1000)), pairs_per_s: report.swiotlb.map_unmap_per_sec,
      });
    }
  }

  const printScaling = () => {
    console.log(`scaling (default workload, ${SCALE_RUNTIME} runs): vCPUs  pool  boot ms  peak RSS MiB  boot CPU ms  CPU ms per run s  pairs/s`);
    for (const x of scaling) {
      console.log(`  ${String(x.vcpus).padStart(4)}  ${x.pool.padStart(4)}  ${String(x.boot_ms).padStart(7)}  ${String(x.max_rss_mib).padStart(12)}  ${String(x.cpu_boot_ms).padStart(11)}  ${String(x.cpu_ms_per_run_s).padStart(16)}  ${fmt(x.pairs_per_s).padStart(8)}`);
    }
  };
  if (ten === null) {
    printScaling();
    console.log(JSON.stringify({ bench: 'vm', scaling }));
    return 0;
  }
  const rows = {
    vm_over_core: ratioRows,
    idle,
    boot_ms_median: bootMs,
    boot_ms_all: boots,
    run_10s_wall_ms: Math.round(ten.wallMs),
    run_10s_boot_ms: ten.report.run.boot_ms,
    run_10s_io_ms: ten.report.run.run_ms,
    map_unmap_per_sec: ten.report.swiotlb.map_unmap_per_sec,
    scaling,
  };
  const targets = {
    ...ratioTargets,
    boot_ms_median: bootMs < 1500,
    run_10s_wall_ms: rows.run_10s_wall_ms < 12_000,
  };
  console.log(`boot, 32 vCPUs, 1 GiB pool      ${bootMs} ms median of ${boots.join(', ')}${met(targets.boot_ms_median)}`);
  console.log(`10 s run, 32 vCPUs, wall        ${rows.run_10s_wall_ms} ms (boot ${rows.run_10s_boot_ms} ms, I/O ${rows.run_10s_io_ms} ms)${met(targets.run_10s_wall_ms)}`);
  console.log(`map+unmap pairs/s sustained     ${fmt(rows.map_unmap_per_sec)}`);
  printScaling();
  console.log(JSON.stringify({ bench: 'vm', ...rows, targets }));
  return 0;
});

interface IdleRow {
  build: string; device: string; commands: number; passes: number; cpu_ms: number; life_ms: number; cpu_ms_per_s: number; cpu_us_per_command: number;
}

/** Each device thread's CPU per second of its life in a run where nvme0 is busy and eth0 gets no command (printed). */
async function idleRows(builds: readonly { name: string; script: string | undefined }[]): Promise<IdleRow[]> {
  const rows: IdleRow[] = [];
  for (let i = 0; i < IDLE_REPS; i++) {
    for (const b of builds) {
      progress(`idle device: vm (${b.name}), jobs/randrw-4k.fio, ${IDLE_VCPUS} vCPUs (${i + 1}/${IDLE_REPS})`);
      const { report } = await vm(['--vcpus', String(IDLE_VCPUS), '--job', RATIO_JOB, '--runtime', IDLE_RUNTIME], b.script);
      // An older build's report lacks the per-thread figures: NaN, printed as '-'.
      const threads = (report.run as Partial<RunReport['run']>).device_threads ?? [{ name: 'eth0', commands: NaN, passes: NaN, cpu_ms: NaN, life_ms: NaN }];
      for (const d of threads) {
        const cpu = d.cpu_ms ?? NaN;
        rows.push({ build: b.name, device: d.name, commands: d.commands, passes: d.passes, cpu_ms: cpu, life_ms: d.life_ms, cpu_ms_per_s: cpu / (d.life_ms / 1000), cpu_us_per_command: (cpu * 1000) / d.commands });
      }
    }
  }
  const num = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
  console.log(`idle device: jobs/randrw-4k.fio (${IDLE_RUNTIME}, ${IDLE_VCPUS} vCPUs) keeps nvme0 busy and sends eth0 no command; each device thread's own CPU (Linux per-thread run time), alternated ${IDLE_REPS}x:`);
  for (const r of rows) {
    const tag = builds.length > 1 ? ` [${r.build}]` : '';
    const per = r.commands > 0 ? `, ${num(r.cpu_us_per_command, 2)} us per command` : '';
    console.log(`  ${r.device.padEnd(6)}${tag}  ${fmt(r.commands).padStart(9)} commands ${fmt(r.passes).padStart(7)} passes  CPU ${num(r.cpu_ms, 1).padStart(7)} ms in ${num(r.life_ms / 1000, 2)} s: ${num(r.cpu_ms_per_s, 2).padStart(7)} ms per s${per}`);
  }
  for (const b of builds) {
    const idle = rows.filter((r) => r.build === b.name && r.commands === 0).map((r) => r.cpu_ms_per_s);
    if (idle.length > 0) console.log(`  idle device (no command)${builds.length > 1 ? ` [${b.name}]` : ''}: median ${num(median(idle), 2)} ms CPU per s (${num(Math.min(...idle), 2)}-${num(Math.max(...idle), 2)})`);
  }
  return rows;
}
