// Worker entry point of the logging-overhead benchmark: runs one OverheadJob and reports.
import { parentPort, workerData } from 'node:worker_threads';
import { runOverheadJob, type OverheadJob } from '../src/log/overhead-worker.js';

parentPort!.postMessage(await runOverheadJob(workerData as OverheadJob));
