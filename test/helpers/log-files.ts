// Small helpers for tests that read run logs back.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { EmitterJob } from '../../src/log/emitter.js';
import { workerFile } from '../../src/util/worker-file.js';

export interface TempDir {
  path: string;
  file(name: string): string;
  remove(): void;
}

export function tempDir(prefix = 'coco-log-test-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, file: (name) => join(path, name), remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Every line of an NDJSON file, parsed; throws on a line that is not JSON (a log must be complete). */
export function readRecords(file: string): Array<Record<string, unknown>> {
  const text = readFileSync(file, 'utf8');
  if (text.length > 0 && !text.endsWith('\n')) throw new Error(`${file}: last line is not terminated`);
  return text.split('\n').filter((l) => l !== '').map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`${file}:${i + 1}: not JSON: ${l.slice(0, 80)}`);
    }
  });
}

/** Run workers/log-emitter.js with this job until it exits; resolves with what it reported. */
export function runEmitter(job: EmitterJob): Promise<{ emitted: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerFile('log-emitter'), { workerData: job });
    let reply: { emitted: number } | undefined;
    w.on('message', (m: { emitted: number }) => {
      reply = m;
    });
    w.once('error', reject);
    w.once('exit', () => (reply ? resolve(reply) : reject(new Error('log-emitter exited without reporting'))));
  });
}
