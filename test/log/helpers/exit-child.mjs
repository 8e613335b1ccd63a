// A process that logs (from the main thread and from a worker), then fails in the way argv[2] says.
// Run by test/log/exit.test.ts against the compiled dist/. The drain interval is long, so whatever
// reaches the file was written by the exit paths, not by the periodic tick.
//   node exit-child.mjs <throw|throw-quiet|reject|sigint|sigint-app|exit> <log file>
import { Worker } from 'node:worker_threads';

const [mode, file] = process.argv.slice(2);
const root = new URL('../../../', import.meta.url);
const { createRunLogger } = await import(new URL('dist/src/log/logger.js', root).href);
const { workerFile } = await import(new URL('dist/src/util/worker-file.js', root).href);

const log = createRunLogger({ file, level: 'info', drainIntervalMs: 60_000, ringBytes: 1 << 20, fullWaitMs: 1000 });
log.emit('run_config', { config: { vcpus: 1, mode } });
for (let i = 1; i <= 200; i++) {
  log.emit('sample', { t_ms: i, io_tlb_used: i, io_tlb_used_hiwater: i, nslabs: 32768, area_used: [i], throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0 });
}
const events = [];
for (let i = 0; i < 1000; i++) {
  events.push({ event: 'map_failure', fields: { device: 'nvme0', vcpu: 0, size: 4096, dir: 'DMA_TO_DEVICE', total: 32768, used: i } });
}
// stay: the worker lives on; noFlush: it reports as soon as its records are in its ring, undrained.
const worker = new Worker(workerFile('log-emitter'), {
  workerData: { channel: log.workerChannel('vcpu0'), bind: { vcpu: 0 }, events, stay: true, noFlush: true },
});
const last = () => log.emit('tunable_changed', { name: '/proc/sys/kernel/dma/swiotlb_default/high_throttle', old: 0, new: 1 });

worker.once('message', () => {
  switch (mode) {
    case 'throw':
      last();
      throw new Error('boom');
    case 'throw-quiet':
      throw new Error('boom');
    case 'reject':
      last();
      void Promise.reject(new Error('boom'));
      break;
    case 'exit':
      last();
      process.exit(3);
      break;
    case 'sigint':
      last();
      process.stdout.write('ready\n');
      setInterval(() => {}, 1000);
      break;
    case 'sigint-app':
      // The application has its own Ctrl-C handler: the logger flushes and lets it decide.
      process.on('SIGINT', () => {
        log.emit('run_summary', { summary: { status: 'interrupted', runtime_ms: 1 } });
        process.exit(130);
      });
      last();
      process.stdout.write('ready\n');
      setInterval(() => {}, 1000);
      break;
    default:
      throw new Error(`unknown mode ${mode}`);
  }
});
