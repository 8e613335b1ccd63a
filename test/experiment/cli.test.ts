// npm run experiment: bad input is one line and exit 2, --list names every experiment and its claim,
// the registry's claims are quoted exactly from the seed threads, and the reports (EXPERIMENTS.md,
// the HTML page) carry every verdict and agree/disagree marks computed from the two forms.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ChromiumLookup, findOrInstallChromium, visitFile } from '../helpers/chromium.js';
import { tempDir } from '../helpers/log-files.js';
import { InputError } from '../../src/errors.js';
import { experimentMain } from '../../src/experiment/cli.js';
import { EXPERIMENTS } from '../../src/experiment/registry.js';
import { type AllResults, agree, mdSections, recordedVerdicts, renderExperimentsHtml, renderMarkdown } from '../../src/experiment/report.js';
import type { AnyExperiment, ExperimentResult, VerdictWord } from '../../src/experiment/types.js';
import { type ScriptResult, scriptProcess } from '../helpers/vm-process.js';


function experiment(args: string[]): Promise<ScriptResult> {
  return scriptProcess('experiment', args, { timeoutMs: 60_000 });
}

describe('npm run experiment: input', () => {
  // Through the command itself: one line on stderr, nothing on stdout, exit 2.
  for (const [args, what] of [
    [['no-such-experiment'], /no experiment "no-such-experiment"; expected one of kelley-throttle/],
    [['--bogus'], /unknown flag --bogus/],
  ] as const) {
    it(`refuses ${JSON.stringify(args)} with one line and exit 2`, async () => {
      const r = await experiment([...args]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(what);
    });
  }
  // The rest through experimentMain: an InputError (which runMain prints as one line, exit 2) before anything runs.
  for (const [args, what] of [
    [[], /name an experiment/],
    [['kelley-throttle', '--repeat', '0'], /--repeat/],
    [['kelley-throttle', 'kelley-throttle'], /one experiment at a time/],
    [['--all', 'kelley-throttle'], /--all runs every experiment/],
    [['--list', 'kelley-throttle'], /--list runs nothing/],
    [['kelley-throttle', '--html', 'x.html'], /--markdown and --html go with --all/],
    [['kelley-throttle', '--output-format', 'xml'], /expected normal or json/],
    [['--update'], /--update takes the names to rerun/],
    [['--update', '--all'], /give one of them/],
    [['--update', 'kelley-throttle', '--quick'], /--update records both forms/],
    [['--update', 'kelley-throttle', '--html', 'x.html'], /--html goes with --all/],
    [['--update', 'kelley-throttle', 'kelley-throttle'], /named twice/],
    [['--update', 'kelley-throttle', '--markdown', '/nonexistent/EXPERIMENTS.md'], /--update rewrites sections of an existing "\/nonexistent\/EXPERIMENTS.md"/],
  ] as const) {
    it(`refuses ${JSON.stringify(args)} as bad input`, async () => {
      const e = await experimentMain([...args]).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).exitStatus).toBe(2);
      expect((e as Error).message).toMatch(what);
      expect((e as Error).message).not.toContain('\n');
    });
  }
  it('--list prints every experiment with its author and claim', async () => {
    const r = await experiment(['--list']);
    expect(r.code).toBe(0);
    for (const e of EXPERIMENTS) {
      expect(r.stdout).toContain(`${e.number}. ${e.name}`);
      expect(r.stdout).toContain(e.claim.author);
    }
  });
});

describe('the registry', () => {
  it('names and numbers are unique, in issue order', () => {
    expect(new Set(EXPERIMENTS.map((e) => e.name)).size).toBe(EXPERIMENTS.length);
    const numbers = EXPERIMENTS.map((e) => e.number);
    expect([...numbers].sort((a, b) => a - b)).toEqual(numbers);
    expect(new Set(numbers).size).toBe(numbers.length);
  });
  // The seed threads are the project's source material; where a checkout has them, every quote must be
  // in its file word for word (line breaks and "> " quoting aside).
  const seeds = '/work/shared/seeds';
  it.skipIf(!existsSync(seeds))('every claim from a seed file is quoted exactly', () => {
    const norm = (t: string) => t.replace(/^(> ?)+/gm, '').replace(/\s+/g, ' ');
    for (const e of EXPERIMENTS) {
      const m = /seed (\d{3}_[0-9a-f]+\.txt)/.exec(e.claim.source);
      if (m === null) continue;
      const text = norm(readFileSync(join(seeds, m[1]!), 'utf8'));
      expect(text, e.name).toContain(norm(e.claim.quote));
    }
  });
});

function result(e: AnyExperiment, form: 'full' | 'quick', v: VerdictWord): ExperimentResult {
  return {
    name: e.name, number: e.number, form, repeat: 1, figures: {}, verdict: { verdict: v, why: `because ${form}` },
    table: { head: ['a', '>b'], rows: [['x|y', '1']] }, chart: { title: 't', kind: 'bars', xLabel: 'x', yLabel: 'y', x: ['p', 'q'], series: [{ label: 's', values: [1, null] }] },
    runs: 2, not_ok: [], wall_ms: 1000,
  };
}

describe('the reports', () => {
  const e = EXPERIMENTS[0]!;
  const all = (full: VerdictWord, quick: VerdictWord): AllResults => ({
    started: '2026-12-01T00:00:00.000Z', wall_ms: 90_000, host: { cores: 2, loadavg: 3 },
    entries: [{ experiment: e, full: result(e, 'full', full), quick: result(e, 'quick', quick) }],
  });
  it('EXPERIMENTS.md records both verdicts, readably and as JSON, and says they agree', () => {
    const md = renderMarkdown(all('reproduced', 'reproduced'));
    expect(md).toContain(`| ${e.number} | [${e.name}](#${e.number}-${e.name}) | ${e.claim.author} | reproduced | reproduced | yes |`);
    expect(md).toContain('x\\|y'); // a cell's | is escaped
    expect(md).toContain('1.5 min of wall time');
    expect(md).toContain(e.claim.quote);
    expect(recordedVerdicts(md)).toEqual({ [e.name]: { full: 'reproduced', quick: 'reproduced', run: '2026-12-01T00:00:00.000Z', command: '--all' } });
    expect(md).toContain('*Run 2026-12-01T00:00:00.000Z by `npm run experiment -- --all` (2 cores, load average 3.0 at the start).*');
    expect(md).toContain('Every experiment run in both forms reached the same verdict');
  });
  it('a verdict that changes between the forms is reported as a finding', () => {
    const doc = all('reproduced', 'partly');
    expect(agree(doc.entries[0]!)).toBe(false);
    const md = renderMarkdown(doc);
    expect(md).toContain('**no: a finding**');
    expect(md).toContain('**Finding:** the quick form says partly, the full form reproduced.');
    expect(recordedVerdicts(md)[e.name]).toMatchObject({ full: 'reproduced', quick: 'partly' });
  });
  it('--update rewrites the named sections and keeps the others, each with the run that made it', () => {
    const [a, b, c] = [EXPERIMENTS[0]!, EXPERIMENTS[1]!, EXPERIMENTS[2]!];
    const first: AllResults = {
      started: '2026-12-01T00:00:00.000Z', wall_ms: 90_000, host: { cores: 2, loadavg: 3 },
      entries: [a, b, c].map((x) => ({ experiment: x, full: result(x, 'full', 'partly'), quick: result(x, 'quick', 'partly') })),
    };
    const old = renderMarkdown(first);
    const md = renderMarkdown({
      started: '2026-12-02T00:00:00.000Z', wall_ms: 60_000, host: { cores: 2, loadavg: 1 }, command: `--update ${b.name}`,
      entries: [{ experiment: b, full: result(b, 'full', 'reproduced'), quick: result(b, 'quick', 'refuted') }], previous: { md: old, order: EXPERIMENTS },
    });
    // Every section in the registry's order, the kept ones word for word.
    expect([...mdSections(md).keys()]).toEqual([a.name, b.name, c.name]);
    expect(mdSections(md).get(a.name)).toBe(mdSections(old).get(a.name));
    expect(mdSections(md).get(c.name)).toBe(mdSections(old).get(c.name));
    expect(mdSections(md).get(b.name)).toContain(`*Run 2026-12-02T00:00:00.000Z by \`npm run experiment -- --update ${b.name}\``);
    expect(recordedVerdicts(md)).toEqual({
      [a.name]: { full: 'partly', quick: 'partly', run: '2026-12-01T00:00:00.000Z', command: '--all' },
      [b.name]: { full: 'reproduced', quick: 'refuted', run: '2026-12-02T00:00:00.000Z', command: `--update ${b.name}` },
      [c.name]: { full: 'partly', quick: 'partly', run: '2026-12-01T00:00:00.000Z', command: '--all' },
    });
    expect(md).toContain(`| ${b.number} | [${b.name}](#${b.number}-${b.name}) | ${b.claim.author} | reproduced | refuted | **no: a finding** |`);
    expect(md).toContain(`Findings: 1 experiment reached a different verdict in the quick form than in the full one (${b.name})`);
    expect(md).toContain(`Sections ${b.name} regenerated by \`npm run experiment -- --update ${b.name}\``);
  });
  it('--update gives a section of a file from before Run lines the Run line of the --all that made it', () => {
    const legacy = renderMarkdown({ started: '2026-12-01T00:00:00.000Z', wall_ms: 1, host: { cores: 2, loadavg: 17.3 }, entries: [{ experiment: e, full: result(e, 'full', 'partly') }] })
      .replace(/^\*Run .*\n\n/m, '').replace(/,"run":"[^"]*","command":"[^"]*"/, '');
    expect(legacy).not.toContain('*Run ');
    const md = renderMarkdown({ started: 'now', wall_ms: 1, host: { cores: 2, loadavg: 1 }, command: '--update x', entries: [], previous: { md: legacy, order: EXPERIMENTS } });
    expect(mdSections(md).get(e.name)).toContain('*Run 2026-12-01T00:00:00.000Z by `npm run experiment -- --all` (2 cores, load average 17.3 at the start).*');
    expect(recordedVerdicts(md)[e.name]).toEqual({ full: 'partly', run: '2026-12-01T00:00:00.000Z', command: '--all' });
  });
  it('the HTML page embeds every chart and both verdicts', () => {
    const html = renderExperimentsHtml(all('refuted', 'refuted'));
    expect(html.startsWith('<!doctype html>')).toBe(true);
    const data = JSON.parse(/<script type="application\/json" id="experiments-data">(.*?)<\/script>/s.exec(html)![1]!) as { charts: { name: string }[] };
    expect(data.charts.map((c) => c.name)).toEqual([e.name]);
    expect(html).toContain('full form: refuted');
    expect(html).toContain('quick form: refuted');
    expect(html).not.toMatch(/<script src=|<link /); // self-contained
  });
});

describe('the experiments page in a browser', () => {
  let browser: ChromiumLookup;
  beforeAll(() => {
    browser = findOrInstallChromium();
  }, 16 * 60_000);

  it('draws one chart per experiment, bars and lines, with nothing fetched', async (ctx) => {
    if (browser.path === undefined) {
      ctx.skip(`Chromium unavailable: ${browser.why}`); // allowed: skipped only when Chromium cannot be installed
      return;
    }
    const [a, b] = [EXPERIMENTS[0]!, EXPERIMENTS[1]!];
    const ra = result(a, 'full', 'reproduced');
    const rb = { ...result(b, 'full', 'partly'), chart: { title: 'l', kind: 'lines' as const, xLabel: 'x', yLabel: 'y', x: [0, 1, 16], series: [{ label: 's', values: [1, 1.1, null] }, { label: 't', values: [2, 2, 2] }] } };
    const dir = tempDir('coco-experiments-html-');
    try {
      const file = join(dir.path, 'experiments.html');
      writeFileSync(file, renderExperimentsHtml({ started: 'now', wall_ms: 1, host: { cores: 2, loadavg: 1 }, entries: [{ experiment: a, full: ra }, { experiment: b, full: rb }] }));
      await visitFile(browser.path, file, async (page, visit) => {
        const drawn = await page.evaluate<{ charts: Record<string, number>; canvases: number }>(
          `(() => Object.assign({}, window.cocoExperiments, { canvases: document.querySelectorAll('canvas').length }))()`);
        expect(visit.errors).toEqual([]);
        expect(visit.network).toEqual([]);
        // Points drawn: the bar chart's one non-null value; the line chart's 2 + 3.
        expect(drawn.charts).toEqual({ [a.name]: 1, [b.name]: 5 });
        expect(drawn.canvases).toBe(2);
      });
    } finally {
      dir.remove();
    }
  }, 60_000);
});
