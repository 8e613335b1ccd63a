// Finding Debian's Chromium for the browser test, installing it with apt-get when it is missing.
// Never downloads a browser any other way.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

export interface ChromiumLookup {
  path?: string;
  /** Why there is none (for the skip message). */
  why?: string;
}

function found(): string | undefined {
  const env = process.env['CHROMIUM_PATH'];
  if (env && existsSync(env)) return env;
  return CANDIDATES.find((p) => existsSync(p));
}

function apt(args: string[]): { ok: boolean; tail: string } {
  const r = spawnSync('apt-get', args, { encoding: 'utf8', timeout: 15 * 60_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const tail = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n').at(-1) ?? '';
  return { ok: r.status === 0, tail };
}

/** Chromium's path, installing Debian's package first if needed and possible. */
export function findOrInstallChromium(): ChromiumLookup {
  const have = found();
  if (have) return { path: have };
  if (process.platform !== 'linux' || typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { why: 'Chromium is not installed and installing it needs root (apt-get install chromium)' };
  }
  if (spawnSync('apt-get', ['--version']).status !== 0) return { why: 'Chromium is not installed and apt-get is not available' };
  let r = apt(['install', '-y', '--no-install-recommends', 'chromium']);
  if (!r.ok) {
    apt(['update']);
    r = apt(['install', '-y', '--no-install-recommends', 'chromium']);
  }
  const path = found();
  return path ? { path } : { why: `apt-get install chromium failed: ${r.tail}` };
}

/** Flags for headless Chromium on a CI machine with no GPU, no sandbox and no network wanted. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
