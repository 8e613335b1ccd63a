// How TypeScript reaches worker threads, decided once for the whole project: every worker runs its
// entry point compiled and bundled into one CommonJS file, dist/workers/<name>.cjs (see
// scripts/bundle-workers.ts for why). `npm run ...` and `npm test` build first, so the same file
// serves the command-line tools (which run from dist/) and vitest (which runs the sources).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

let root: string | undefined;

/** The project's root directory: the nearest ancestor whose package.json names coco-swiotlb. */
export function projectRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'coco-swiotlb') {
      root = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('coco-swiotlb: cannot find the project root (package.json)');
    dir = up;
  }
}

/** URL of the bundled entry point of worker `name` (workers/<name>.ts). */
export function workerFile(name: string): URL {
  const file = join(projectRoot(), 'dist', 'workers', `${name}.cjs`);
  if (!existsSync(file)) {
    throw new Error(`coco-swiotlb: ${file} is missing; run "npm run build" first`);
  }
  return pathToFileURL(file);
}
