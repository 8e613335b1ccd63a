// The project's commands as a test runs them: a built script in a child process, its exit status and
// output. A non-zero exit is returned, not thrown.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/util/worker-file.js';

const run = promisify(execFile);
export const VM_SCRIPT = join(projectRoot(), 'dist', 'scripts', 'vm.js');

export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ScriptOptions {
  /** Variables over the environment. */
  env?: NodeJS.ProcessEnv;
  /** Node flags before the script (the npm scripts of the VM's commands pass --single-threaded-gc). */
  nodeFlags?: string[];
  timeoutMs?: number;
}

/** Runs dist/scripts/NAME.js with `args` from the project root. */
export async function scriptProcess(name: string, args: string[], opts: ScriptOptions = {}): Promise<ScriptResult> {
  const script = join(projectRoot(), 'dist', 'scripts', `${name}.js`);
  try {
    const r = await run(process.execPath, [...(opts.nodeFlags ?? []), script, ...args], {
      cwd: projectRoot(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, env: { ...process.env, ...opts.env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as ScriptResult;
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** Runs the VM with `args` (and `env` over the environment). */
export function vmProcess(args: string[], env: Record<string, string> = {}): Promise<ScriptResult> {
  return scriptProcess('vm', args, { env, nodeFlags: ['--single-threaded-gc'], timeoutMs: 60_000 });
}
