// The second half of `npm run build`: bundle each compiled worker entry point (dist/workers/<name>.js)
// with everything it imports into one CommonJS file, dist/workers/<name>.cjs, which is what threads run.
// Why: a VM starts up to 256 threads, and each thread that loads ~30 ES modules pays for the ESM loader
// and every module's resolve, read and link; one CommonJS file costs a fraction of that (`npm run
// bench:vm` measures boot). pino stays outside: it starts its own threads from its package's files,
// and workers load it only when logging is on.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'rolldown';
import { projectRoot } from '../src/util/worker-file.js';

const dir = join(projectRoot(), 'dist', 'workers');
const entries = readdirSync(dir).filter((f) => f.endsWith('.js'));
if (entries.length === 0) throw new Error(`no compiled worker entry points in ${dir}; run tsc first`);
await build(entries.map((f) => ({
  input: join(dir, f),
  platform: 'node' as const,
  external: [/^pino(\/|$)/],
  logLevel: 'warn' as const,
  output: { file: join(dir, f.replace(/\.js$/, '.cjs')), format: 'cjs' as const },
})));
