// Thread entry point: one thread of the core benchmark (src/bench/core-bench.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type CoreBenchThreadConfig, runCoreBenchThread } from '../src/bench/core-bench.js';

parentPort!.postMessage(runCoreBenchThread(workerData as CoreBenchThreadConfig));
