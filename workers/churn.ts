// Thread entry point: page-cache churn on guest physical memory (src/memory/churn.ts), until stopped.
import { parentPort, workerData } from 'node:worker_threads';
import { type ChurnConfig, runChurn } from '../src/memory/churn.js';

runChurn(workerData as ChurnConfig);
parentPort!.postMessage('done');
