// Thread entry point: one checked allocate/free workload on guest physical memory (src/memory/phys-exerciser.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type PhysExerciserConfig, runPhysExerciser } from '../src/memory/phys-exerciser.js';

parentPort!.postMessage(runPhysExerciser(workerData as PhysExerciserConfig));
