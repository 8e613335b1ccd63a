// Thread entry point: the dynamic swiotlb growth worker (src/swiotlb/dyn-worker.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type GrowthWorkerTask, runGrowthWorker } from '../src/swiotlb/dyn-worker.js';

void runGrowthWorker(workerData as GrowthWorkerTask).then((r) => parentPort!.postMessage(r));
