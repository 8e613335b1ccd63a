// The native references of `npm run bench`: src/bench/native/swiotlb-alloc.c (the kernel's search and
// release for the "alloc only" pattern, and a 4 KiB memcpy for "copy only"), compiled with the
// machine's cc at bench time into a temporary directory and run there; never a committed binary.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../util/worker-file.js';

const run = promisify(execFile);

export type NativeMode = 'alloc' | 'copy';

export interface NativeRef {
  /** The compiler's own description (`cc --version`, first line) and the flags. */
  compiler: string;
  /** Pairs (alloc) or 4 KiB copies (copy) per second over `seconds`, one thread. */
  rate(mode: NativeMode, seconds: number): Promise<number>;
  close(): void;
}

const CFLAGS = ['-O2'];

/** Compile the reference, or null (with why) when the machine has no working cc. */
export function buildNativeRef(): NativeRef | { missing: string } {
  const dir = mkdtempSync(join(tmpdir(), 'coco-bench-native-'));
  const exe = join(dir, 'swiotlb-alloc');
  try {
    execFileSync('cc', [...CFLAGS, '-o', exe, join(projectRoot(), 'src', 'bench', 'native', 'swiotlb-alloc.c')], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { missing: `cc could not build the native reference (${e instanceof Error ? e.message.split('\n')[0] : String(e)})` };
  }
  const version = execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  return {
    compiler: `${version} ${CFLAGS.join(' ')}`,
    rate: async (mode, seconds) => {
      const r = await run(exe, [mode, String(seconds)]);
      const v = Number(r.stdout.trim());
      if (!(v > 0)) throw new Error(`native reference printed "${r.stdout.trim()}", not a rate`);
      return v;
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
