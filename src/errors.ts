// Error classes with a code, so command-line tools can map them to a one-line message and an exit
// status without printing a stack trace.

/** Bad input from a user: a flag, a size, a job file, an environment variable. Exit status 2. */
export class InputError extends Error {
  readonly code: string;
  readonly exitStatus = 2;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'InputError';
    this.code = code;
  }
}

/** `--help` was asked for: the tool prints `text` on stdout and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly text: string) {
    super('help requested');
    this.name = 'HelpRequested';
  }
}

/** A broken invariant of the emulator itself: results after this point cannot be trusted. */
export class InvariantError extends Error {
  readonly code = 'EINVARIANT';
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

/** Cheap invariant check, left on in every build: throws InvariantError when `ok` is false. */
export function assert(ok: boolean, message: string): asserts ok {
  if (!ok) throw new InvariantError(message);
}
