// Worker entry point: attach to a log channel, emit the records it is given (in workerData, then in
// messages), and report. Used by the tests and the fixture generator to produce worker-side records
// through the real API.
import { parentPort, workerData } from 'node:worker_threads';
import { attachWorkerLogger } from '../src/log/worker-logger.js';
import { runEmitterJob, type EmitterJob, type EmitterMessage } from '../src/log/emitter.js';

async function main(job: EmitterJob): Promise<void> {
  const log = await attachWorkerLogger(job.channel, job.bind);
  const port = parentPort!;
  const emitted = await runEmitterJob(log, job);
  port.postMessage({ emitted });
  if (job.throwAfter !== undefined) throw new Error(job.throwAfter);
  if (job.stay === true) {
    // More batches by message until told to finish.
    port.on('message', (m: EmitterMessage) => {
      void (async () => {
        const n = await runEmitterJob(log, { ...job, stay: false, events: m.events ?? [], repeat: 1, close: m.finish === true });
        port.postMessage({ emitted: n, finished: m.finish === true });
        if (m.finish === true) port.close();
      })();
    });
  }
}

void main(workerData as EmitterJob);
