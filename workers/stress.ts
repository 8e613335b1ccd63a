// Thread entry point: one vCPU of the race stress harness (src/stress/worker.ts). The thread stays
// up between trials: each 'trial' message runs one trial and answers with 'result'; broken checks
// are streamed as 'violation' messages while the trial runs.
import { parentPort } from 'node:worker_threads';
import { type StressThreadPayload, runStressThread } from '../src/stress/worker.js';

const port = parentPort!;
port.on('message', (m: { type: 'trial'; payload: StressThreadPayload }) => {
  if (m.type !== 'trial') return;
  const result = runStressThread(m.payload, (msg) => port.postMessage({ type: 'violation', msg }));
  port.postMessage({ type: 'result', result });
});
