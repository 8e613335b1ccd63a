// `npm run vm` as a test runs it: the built script in a child process, its exit status and output.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/util/worker-file.js';

const run = promisify(execFile);
export const VM_SCRIPT = join(projectRoot(), 'dist', 'scripts', 'vm.js');

/** Runs the VM with `args` (and `env` over the environment); a non-zero exit is returned, not thrown. */
export async function vmProcess(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--single-threaded-gc', VM_SCRIPT, ...args], { timeout: 60_000, maxBuffer: 64 << 20, env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}
