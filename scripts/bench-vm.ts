// npm run bench:vm: the VM's own targets, measured on the compiled `vm` command as a user runs it.
// - boot: 32 vCPUs with a 1 GiB pool, from the start of boot until every vCPU waits at the start
//   barrier (the report's run.boot_ms); median of BOOT_RUNS runs. Target < 1.5 s.
// - a 10 s run on 32 vCPUs: the process's wall time, start to exit. Target < 12 s.
// - the map+unmap pairs per second the VM sustained in that run (the emulator's own overhead).
// Not part of `npm test`: these are timings.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runMain } from '../src/cli/main.js';
import { projectRoot } from '../src/util/worker-file.js';
import type { RunReport } from '../src/vm/report.js';

const run = promisify(execFile);
const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');
const BOOT_RUNS = 3;

async function vm(args: string[]): Promise<{ report: RunReport; wallMs: number }> {
  const t0 = performance.now();
  const r = await run(process.execPath, ['--single-threaded-gc', VM, ...args, '--output-format', 'json'], { maxBuffer: 64 << 20 });
  return { report: JSON.parse(r.stdout) as RunReport, wallMs: performance.now() - t0 };
}

runMain(async () => {
  const boots: number[] = [];
  for (let i = 0; i < BOOT_RUNS; i++) {
    const { report } = await vm(['--vcpus', '32', '--swiotlb', '1G', '--runtime', '500ms']);
    boots.push(report.run.boot_ms);
  }
  boots.sort((a, b) => a - b);
  const bootMs = boots[Math.floor(boots.length / 2)]!;
  const ten = await vm(['--vcpus', '32', '--swiotlb', '1G', '--runtime', '10s']);
  const rows = {
    boot_ms_median: bootMs,
    boot_ms_all: boots,
    run_10s_wall_ms: Math.round(ten.wallMs),
    run_10s_boot_ms: ten.report.run.boot_ms,
    run_10s_io_ms: ten.report.run.run_ms,
    map_unmap_per_sec: ten.report.swiotlb.map_unmap_per_sec,
  };
  const targets = { boot_ms_median: bootMs < 1500, run_10s_wall_ms: rows.run_10s_wall_ms < 12_000 };
  console.log(`boot, 32 vCPUs, 1 GiB pool      ${bootMs} ms median of ${boots.join(', ')}${targets.boot_ms_median ? '  (target met)' : '  (TARGET MISSED)'}`);
  console.log(`10 s run, 32 vCPUs, wall        ${rows.run_10s_wall_ms} ms (boot ${rows.run_10s_boot_ms} ms, I/O ${rows.run_10s_io_ms} ms)${targets.run_10s_wall_ms ? '  (target met)' : '  (TARGET MISSED)'}`);
  console.log(`map+unmap pairs/s sustained     ${rows.map_unmap_per_sec.toLocaleString('en-US')}`);
  console.log(JSON.stringify({ bench: 'vm', ...rows, targets }));
  return 0;
});
