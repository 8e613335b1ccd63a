// Thread entry point: one scripted or slop thread of the throttling tests (src/swiotlb/throttle-exerciser.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type ThrottleWorkerConfig, runThrottleWorker } from '../src/swiotlb/throttle-exerciser.js';

parentPort!.postMessage(runThrottleWorker(workerData as ThrottleWorkerConfig));
