// The second half of `npm run build`: bundle each compiled worker entry point (dist/workers/<name>.js)
// with everything it imports into one CommonJS file, dist/workers/<name>.cjs, which is what threads run.
// Why: a VM starts up to 256 threads, and each thread that loads ~30 ES modules pays for the ESM loader
// and every module's resolve, read and link; one CommonJS file costs a fraction of that (`npm run
// bench:vm` measures boot). pino stays outside: it starts its own threads from its package's files,
// and workers load it only when logging is on.
// Every `npm run` builds first, so an up-to-date build must be cheap: tsc is incremental (it leaves
// unchanged outputs alone), and the bundles are rebuilt only when a compiled file or the lockfile is
// newer than the oldest bundle.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'rolldown';
import { projectRoot } from '../src/util/worker-file.js';
import { parseFlags } from '../src/cli/flags.js';
import { HelpRequested, InputError } from '../src/errors.js';

// `npm run build -- --help`: the usage, and nothing built (tsc has run by then; it is incremental).
try {
  parseFlags(process.argv.slice(2), [], 'build', 'Compiles the TypeScript (tsc, incremental) and bundles each worker entry point into dist/workers/<name>.cjs. No flags.');
} catch (e) {
  if (e instanceof HelpRequested) {
    process.stdout.write(e.text);
    process.exit(0);
  }
  if (e instanceof InputError) {
    process.stderr.write(`build: ${e.message}\n`);
    process.exit(e.exitStatus);
  }
  throw e;
}

const root = projectRoot();
const dir = join(root, 'dist', 'workers');
const entries = readdirSync(dir).filter((f) => f.endsWith('.js'));
if (entries.length === 0) throw new Error(`no compiled worker entry points in ${dir}; run tsc first`);
const bundles = entries.map((f) => join(dir, f.replace(/\.js$/, '.cjs')));

/** The newest modification time of the bundles' inputs: compiled JavaScript and the lockfile. */
function newestInput(): number {
  let newest = statSync(join(root, 'package-lock.json')).mtimeMs;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, 'dist', 'src'));
  walk(dir);
  return newest;
}

const upToDate = bundles.every(existsSync) && Math.min(...bundles.map((b) => statSync(b).mtimeMs)) >= newestInput();
if (!upToDate) {
  await build(entries.map((f, i) => ({
    input: join(dir, f),
    platform: 'node' as const,
    external: [/^pino(\/|$)/],
    logLevel: 'warn' as const,
    output: { file: bundles[i]!, format: 'cjs' as const },
  })));
}
