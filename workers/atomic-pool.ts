// Thread entry point: the atomic pool's expansion work (atomic_pool_work_fn), a kworker of its own
// (src/memory/atomic-pool.ts). It parks on the pool's work word and exits when told to stop.
import { parentPort, workerData } from 'node:worker_threads';
import { type AtomicPoolWorkerConfig, runAtomicPoolWorker } from '../src/memory/atomic-pool-worker.js';

void runAtomicPoolWorker(workerData as AtomicPoolWorkerConfig).then((r) => parentPort!.postMessage(r));
