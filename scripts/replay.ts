// npm run replay -- TRACE [flags] [vm flags]: a kernel DMA trace as the VM's workload (src/trace/replay.ts).
import { runMain } from '../src/cli/main.js';
import { replayMain } from '../src/trace/replay.js';

runMain(() => replayMain(process.argv.slice(2)));
