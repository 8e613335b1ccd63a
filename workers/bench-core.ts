// Thread entry point: one thread of the core benchmark (src/bench/core-bench.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type CoreBenchThreadConfig, runCoreBenchThread } from '../src/bench/core-bench.js';

// Entry points are bundled as CommonJS (no top-level await); a rejection fails the thread.
void runCoreBenchThread(workerData as CoreBenchThreadConfig).then((r) => parentPort!.postMessage(r));
