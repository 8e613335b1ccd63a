// Thread entry point: one thread of the core benchmark (src/bench/core-bench.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type CoreBenchThreadConfig, runCoreBenchThread } from '../src/bench/core-bench.js';
import { IoTlbMem } from '../src/swiotlb/mem.js';

const cfg = workerData as CoreBenchThreadConfig;
const Mem = cfg.memModule !== undefined ? ((await import(cfg.memModule)) as { IoTlbMem: typeof IoTlbMem }).IoTlbMem : IoTlbMem;
parentPort!.postMessage(runCoreBenchThread(cfg, Mem));
