// Running a batch of one-shot worker threads: each gets its workerData, posts one result and exits.
// The first failure terminates the others, so a crash never leaves orphan threads behind.
import { Worker } from 'node:worker_threads';
import { workerFile } from './worker-file.js';

export async function runWorkers<T>(name: string, datas: readonly unknown[]): Promise<T[]> {
  const file = workerFile(name);
  const workers = datas.map((workerData) => new Worker(file, { workerData }));
  const results = workers.map((w, i) => new Promise<T>((resolve, reject) => {
    let result: { value: T } | undefined;
    w.once('message', (m: T) => { result = { value: m }; });
    w.once('error', (e) => reject(new Error(`worker ${name}[${i}] failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e })));
    w.once('exit', (code) => {
      if (result !== undefined) resolve(result.value);
      else reject(new Error(`worker ${name}[${i}] exited with code ${code} before reporting`));
    });
  }));
  try {
    return await Promise.all(results);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
}
