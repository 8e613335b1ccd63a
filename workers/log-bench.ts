// Worker entry point of the logging-overhead benchmark: runs one OverheadJob and reports.
import { parentPort, workerData } from 'node:worker_threads';
import { runOverheadJob, type OverheadJob } from '../src/log/overhead-worker.js';

void runOverheadJob(workerData as OverheadJob).then((r) => parentPort!.postMessage(r));
