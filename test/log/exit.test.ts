// Nothing is lost when a run ends badly: a process that throws, rejects, exits or gets Ctrl-C
// leaves a complete, parseable log that ends with the last record emitted before the fault, with
// every record its worker had written (still undrained in the worker's ring when the fault hit).
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readRecords, tempDir } from '../helpers/log-files.js';

const CHILD = fileURLToPath(new URL('./helpers/exit-child.mjs', import.meta.url));
const dir = tempDir('coco-exit-test-');
afterAll(() => dir.remove());

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runChild(mode: string, file: string, interrupt = false): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, mode, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      if (interrupt && d.toString().includes('ready')) child.kill('SIGINT');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

function expectComplete(file: string, lastEvent: string): void {
  const recs = readRecords(file); // throws on any partial or non-JSON line
  const count = (e: string): number => recs.filter((r) => r['event'] === e).length;
  expect(recs[0]!['event']).toBe('run_config');
  expect(count('sample')).toBe(200);
  expect(count('map_failure')).toBe(1000);
  expect(recs.at(-1)!['event']).toBe(lastEvent);
}

describe('flush on exit', () => {
  it('keeps the whole log when the main thread throws', async () => {
    const file = dir.file('throw.ndjson');
    const r = await runChild('throw', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error: boom');
    expectComplete(file, 'tunable_changed');
  });

  it('keeps the worker\'s undrained records when the main thread throws without logging', async () => {
    const file = dir.file('throw-quiet.ndjson');
    const r = await runChild('throw-quiet', file);
    expect(r.code).toBe(1);
    expectComplete(file, 'map_failure');
  });

  it('keeps the whole log on an unhandled rejection', async () => {
    const file = dir.file('reject.ndjson');
    const r = await runChild('reject', file);
    expect(r.code).toBe(1);
    expectComplete(file, 'tunable_changed');
  });

  it('keeps the whole log on process.exit()', async () => {
    const file = dir.file('exit.ndjson');
    const r = await runChild('exit', file);
    expect(r.code).toBe(3);
    expectComplete(file, 'tunable_changed');
  });

  it('keeps the whole log on Ctrl-C, and the process still dies of SIGINT', async () => {
    const file = dir.file('sigint.ndjson');
    const r = await runChild('sigint', file, true);
    expect(r.signal).toBe('SIGINT');
    expectComplete(file, 'tunable_changed');
  });

  it('on Ctrl-C, flushes and leaves the exit to an application that handles SIGINT itself', async () => {
    const file = dir.file('sigint-app.ndjson');
    const r = await runChild('sigint-app', file, true);
    expect(r.code).toBe(130);
    expectComplete(file, 'run_summary');
  });
});
