// Where the main thread's log bytes go: a file and/or stdout, written with synchronous writes in
// batches. Synchronous, because the log must be complete when an 'exit', uncaught-exception or
// signal handler returns, and an asynchronous write still in flight at that point is lost. Batched,
// because one write(2) per record would cost more than formatting it.
import { closeSync, writeSync } from 'node:fs';

/** Flush as soon as this much is buffered, without waiting for the next tick. */
export const SINK_HIGH_WATER_BYTES = 64 * 1024;
/** Longest time a flush keeps retrying a descriptor that says EAGAIN (a full non-blocking pipe). */
const EAGAIN_LIMIT_MS = 10_000;

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

interface Target {
  fd: number;
  name: string;
  close: boolean;
  failed: boolean;
}

export class FdSink {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private readonly targets: Target[] = [];
  /** Bytes written to every working target so far. */
  written = 0;

  /** Add a descriptor; `close` says whether the sink owns it (a file) or not (stdout). */
  addTarget(fd: number, name: string, close: boolean): void {
    this.targets.push({ fd, name, close, failed: false });
  }

  get buffered(): number {
    return this.bytes;
  }

  writeString(s: string): void {
    this.writeBytes(Buffer.from(s, 'utf8'));
  }

  /** Queue bytes (whole lines); the sink keeps the array, so the caller must not reuse it. */
  writeBytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.bytes += b.length;
    if (this.bytes >= SINK_HIGH_WATER_BYTES) this.flushSync();
  }

  /** Write everything buffered, now. */
  flushSync(): void {
    if (this.bytes === 0) return;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    this.bytes = 0;
    for (const t of this.targets) if (!t.failed) this.writeAll(t, buf);
    this.written += buf.length;
  }

  close(): void {
    this.flushSync();
    for (const t of this.targets) {
      if (t.close) {
        try {
          closeSync(t.fd);
        } catch {
          // already closed: nothing to lose
        }
      }
    }
    this.targets.length = 0;
  }

  private writeAll(t: Target, buf: Uint8Array): void {
    let off = 0;
    let waitedMs = 0;
    while (off < buf.length) {
      try {
        off += writeSync(t.fd, buf, off, buf.length - off);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'EAGAIN' || code === 'EBUSY') && waitedMs < EAGAIN_LIMIT_MS) {
          Atomics.wait(sleepCell, 0, 0, 1);
          waitedMs += 1;
          continue;
        }
        // A log that cannot be written must not take the run down with it: say so once, stop using it.
        t.failed = true;
        process.stderr.write(`coco-swiotlb: log: writing ${t.name} failed (${code ?? String(err)}); no more records go there\n`);
        return;
      }
    }
  }
}
