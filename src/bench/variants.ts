// The core with its instrumentation compiled out, for npm run bench: a copy of the compiled
// dist/src/swiotlb/mem.js and area-lock.js in which every guard of an instrumentation point
// (`hook !== null`) and every mutant test (`mutant === M_X`, `mutant !== M_X`) is replaced by its
// value in a normal run, so V8 drops the lines. Benchmarking it against the real build in the same
// run shows what the points cost when no hook is installed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../util/worker-file.js';

const FILES = ['mem.js', 'area-lock.js'];

/** The URL of the real build's mem.js, loaded the same way as the copy so that only the points differ. */
export function instrumentedMemModule(): string {
  return pathToFileURL(join(projectRoot(), 'dist', 'src', 'swiotlb', 'mem.js')).href;
}

/** Write the uninstrumented copy (once per call) and return the URL of its mem.js. */
export function uninstrumentedMemModule(): string {
  const root = projectRoot();
  const srcDir = join(root, 'dist', 'src', 'swiotlb');
  const outDir = join(root, 'dist', 'bench-variants', 'uninstrumented');
  mkdirSync(outDir, { recursive: true });
  for (const f of FILES) {
    let text = readFileSync(join(srcDir, f), 'utf8');
    let folded = 0;
    text = text.replace(/\bhook !== null\b/g, () => {
      folded++;
      return 'false';
    });
    text = text.replace(/\bmutant (===|!==) M_[A-Z_]+\b/g, (_m, op: string) => {
      folded++;
      return op === '===' ? 'false' : 'true';
    });
    if (folded === 0) throw new Error(`bench: found no instrumentation guard to fold in ${f}; has the core changed?`);
    // Imports: the two copied modules import each other; everything else from the real build.
    text = text.replace(/from '(\.{1,2}\/[^']+)'/g, (_m, spec: string) => {
      const name = spec.startsWith('./') ? spec.slice(2) : '';
      if (FILES.includes(name)) return `from './${name}'`;
      let rel = relative(outDir, resolve(srcDir, spec)).split('\\').join('/');
      if (!rel.startsWith('.')) rel = `./${rel}`;
      return `from '${rel}'`;
    });
    writeFileSync(join(outDir, f), text);
  }
  return pathToFileURL(join(outDir, 'mem.js')).href;
}
