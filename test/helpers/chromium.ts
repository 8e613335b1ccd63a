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

/** What a page did while a test looked at it: uncaught errors, and requests that left file:. */
export interface PageVisit {
  errors: string[];
  network: string[];
}

/**
 * Open a file in headless Chromium with the network cut off (anything but file: is aborted and
 * listed), wait for `readyAttr="1"` on the body, and hand the page to `fn`.
 */
export async function visitFile<T>(chromiumPath: string, file: string, fn: (page: import('playwright-core').Page, visit: PageVisit) => Promise<T>,
  readyAttr = 'data-chart-ready'): Promise<T> {
  const { chromium } = await import('playwright-core');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const profile = mkdtempSync(join(tmpdir(), 'coco-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
  try {
    const visit: PageVisit = { errors: [], network: [] };
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:')) return route.continue();
      visit.network.push(url);
      return route.abort();
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => visit.errors.push(e.message));
    await page.setViewportSize({ width: 1280, height: 1000 });
    await page.goto(pathToFileURL(file).href);
    await page.waitForFunction(`document.body.getAttribute(${JSON.stringify(readyAttr)}) === "1"`, null, { timeout: 15_000 });
    return await fn(page, visit);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
