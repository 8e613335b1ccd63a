// Thread entry point: one checked map/unmap workload (src/swiotlb/exerciser.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type ExerciserConfig, runExerciser } from '../src/swiotlb/exerciser.js';

parentPort!.postMessage(runExerciser(workerData as ExerciserConfig));
