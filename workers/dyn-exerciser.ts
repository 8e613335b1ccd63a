// Thread entry point: one checked map/unmap workload against a dynamic allocator (src/swiotlb/dyn-exerciser.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type DynExerciserConfig, runDynExerciser } from '../src/swiotlb/dyn-exerciser.js';

parentPort!.postMessage(runDynExerciser(workerData as DynExerciserConfig));
