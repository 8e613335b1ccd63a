// End to end: `npm run analyze -- run.ndjson --html report.html` on a run log with every event,
// then the report opened from disk in headless Chromium with the network cut off: the chart must
// render with every series holding points, and a screenshot is saved (out/test/report.png).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { writeFixtureLog } from '../helpers/fixture.js';
import { tempDir } from '../helpers/log-files.js';
import { CHROMIUM_ARGS, findOrInstallChromium, type ChromiumLookup } from '../helpers/chromium.js';

/** What the page reports about its chart. */
interface ChartProbe {
  points: Record<string, number>;
  labels: string[];
  xs: number;
  inked: number;
  tables: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOT_DIR = join(ROOT, 'out', 'test');
const dir = tempDir('coco-html-');
let browser: ChromiumLookup;
let html: string;

beforeAll(async () => {
  browser = findOrInstallChromium();
  const fx = await writeFixtureLog(dir.file('run.ndjson'));
  html = dir.file('report.html');
  const r = spawnSync(process.execPath, ['dist/scripts/analyze.js', fx.file, '--html', html], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`HTML report written to ${html}`);
}, 16 * 60_000); // installing Chromium, when it is missing, can take minutes
afterAll(() => dir.remove());

describe('HTML report', () => {
  it('is one self-contained file of bounded size', () => {
    const text = readFileSync(html, 'utf8');
    expect(statSync(html).size).toBeLessThan(1024 * 1024);
    expect(text).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/i);
    expect(text).toContain('uPlot');
  });

  it('renders the chart in headless Chromium with no network', async (ctx) => {
    if (browser.path === undefined) {
      ctx.skip(`Chromium unavailable: ${browser.why}`); // allowed: skipped only when Chromium cannot be installed
      return;
    }
    const profile = tempDir('coco-chromium-');
    const context = await chromium.launchPersistentContext(profile.path, { executablePath: browser.path, headless: true, args: CHROMIUM_ARGS });
    try {
      const network: string[] = [];
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        network.push(url);
        return route.abort();
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.setViewportSize({ width: 1280, height: 1000 });
      await page.goto(pathToFileURL(html).href);
      await page.waitForFunction('document.body.getAttribute("data-chart-ready") === "1"', null, { timeout: 15_000 });
      // Runs in the page (a string, so this Node-typed file needs no DOM types).
      const chart = await page.evaluate<ChartProbe>(`(() => {
        const canvas = document.querySelector('#chart canvas');
        const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
        return {
          points: window.cocoReport.points,
          labels: window.cocoReport.chart.series.map((s) => s.label),
          xs: window.cocoReport.chart.data[0].length,
          inked,
          tables: document.querySelectorAll('table').length,
        };
      })()`);
      expect(errors).toEqual([]);
      expect(network).toEqual([]);
      expect(chart.labels).toEqual(['t (s)', 'io_tlb_used (max)', 'io_tlb_used (min)', 'used_hiwater', 'high_throttle', 'low_throttle', 'pool size (nslabs)', 'transient slots', 'map failures/s', 'I/O errors/s', 'packets dropped/s', 'throttle waits', 'stalls', 'tunable changes', 'pool growths']);
      expect(chart.xs).toBeGreaterThan(10);
      for (const series of ['io_tlb_used (max)', 'used_hiwater', 'high_throttle', 'low_throttle', 'pool size (nslabs)', 'transient slots']) {
        expect(chart.points[series], series).toBeGreaterThanOrEqual(40); // one per sample at least
      }
      for (const series of ['map failures/s', 'I/O errors/s', 'packets dropped/s', 'throttle waits', 'stalls', 'tunable changes']) expect(chart.points[series], series).toBeGreaterThan(0);
      expect(chart.points['pool growths']).toBe(1); // the fixture's one dynamic pool, in one bucket
      expect(chart.inked).toBeGreaterThan(5000); // lines were drawn on the canvas
      expect(chart.tables).toBeGreaterThan(5);
      mkdirSync(SHOT_DIR, { recursive: true });
      const shot = join(SHOT_DIR, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
    } finally {
      await context.close();
      profile.remove();
    }
  });
});
