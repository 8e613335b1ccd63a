// Thread entry point: the allocator loop of npm run bench's instrumentation row
// (src/bench/instrument-bench.ts), on the real core or on the copy with the points compiled out.
import { parentPort, workerData } from 'node:worker_threads';
import { type InstrumentBenchConfig, runInstrumentBenchThread } from '../src/bench/instrument-bench.js';
import { IoTlbMem } from '../src/swiotlb/mem.js';

const cfg = workerData as InstrumentBenchConfig;
const mem = cfg.memModule !== undefined ? (import(cfg.memModule) as Promise<{ IoTlbMem: typeof IoTlbMem }>) : Promise.resolve({ IoTlbMem });
void mem.then((m) => parentPort!.postMessage(runInstrumentBenchThread(cfg, m.IoTlbMem)));
