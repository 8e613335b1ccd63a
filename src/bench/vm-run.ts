// Running the compiled `vm` command as a user runs it, for the VM benchmarks: one JSON report back.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../util/worker-file.js';
import type { RunReport } from '../vm/report.js';

const run = promisify(execFile);

/** This checkout's compiled `vm` command. */
export const VM_SCRIPT = join(projectRoot(), 'dist', 'scripts', 'vm.js');

/** Run `vm` (this checkout's, or `script`) with `args` and --output-format json; its report and the wall time it took. */
export async function runVmJson(args: readonly string[], script = VM_SCRIPT): Promise<{ report: RunReport; wallMs: number }> {
  const t0 = performance.now();
  const r = await run(process.execPath, ['--single-threaded-gc', script, ...args, '--output-format', 'json'], { maxBuffer: 64 << 20 });
  return { report: JSON.parse(r.stdout) as RunReport, wallMs: performance.now() - t0 };
}
