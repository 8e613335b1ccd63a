// The one way a command-line tool starts and ends: bad input is one line and exit 2, a crash is one
// line naming the error and exit 1, never a stack trace unless COCO_DEBUG is set.
import { debugEnabled } from '../config.js';
import { HelpRequested, InputError } from '../errors.js';

const cleanups: (() => void | Promise<void>)[] = [];

/** Run before the process exits, whatever the outcome (flush logs, stop workers). */
export function atExit(fn: () => void | Promise<void>): void {
  cleanups.push(fn);
}

async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch {
      // A failing cleanup must not hide the real outcome.
    }
  }
}

/** COCO_DEBUG, or false when the configuration itself cannot be read (that error is reported instead). */
export function debugOn(): boolean {
  try {
    return debugEnabled();
  } catch {
    return false;
  }
}

export function describeError(e: unknown): string {
  if (e instanceof Error) return debugOn() ? (e.stack ?? e.message) : e.message;
  return String(e);
}

export function runMain(main: () => Promise<number>): void {
  // A reader that goes away (`... | head`) is not an error: the rest of the output is dropped and the
  // tool finishes as it would have (logs flushed, threads stopped).
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  // The configuration (.env.example, ./.env, the environment) is read and checked before anything runs.
  Promise.resolve().then(() => {
    debugEnabled();
    return main();
  }).then(
    async (status) => {
      await runCleanups();
      process.exitCode = status;
    },
    async (e: unknown) => {
      await runCleanups();
      const name = process.argv[1]?.split('/').pop()?.replace(/\.js$/, '') ?? 'coco-swiotlb';
      if (e instanceof HelpRequested) {
        process.stdout.write(e.text);
        process.exitCode = 0;
      } else if (e instanceof InputError) {
        process.stderr.write(`${name}: ${e.message}\n`);
        process.exitCode = e.exitStatus;
      } else {
        process.stderr.write(`${name}: error: ${describeError(e)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
