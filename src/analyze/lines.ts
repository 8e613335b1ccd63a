// Splits a byte stream into lines in bounded memory. A line longer than maxLineBytes is not kept: it
// is reported as overlong and skipped, so a foreign file with no newlines cannot exhaust memory.

export interface LineSink {
  /** A complete line (without its '\n' or '\r\n'); `terminated` is false for a last line with no newline. */
  line(text: string, lineNo: number, terminated: boolean): void;
  /** A line longer than the limit, skipped. */
  overlong(lineNo: number, bytes: number): void;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export class LineSplitter {
  private partial: Buffer[] = [];
  private partialLen = 0;
  private overlongBytes = 0; // > 0 while skipping the rest of an overlong line
  private lineNo = 0;
  /** Bytes seen so far. */
  bytes = 0;

  constructor(private readonly sink: LineSink, private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      const len = end - start;
      if (this.overlongBytes > 0) {
        this.overlongBytes += len;
      } else if (this.partialLen + len > this.maxLineBytes) {
        this.overlongBytes = this.partialLen + len;
        this.partial = [];
        this.partialLen = 0;
      } else if (nl === -1) {
        if (len > 0) {
          // Copy: keeping a view would pin the whole chunk.
          this.partial.push(Buffer.from(chunk.subarray(start, end)));
          this.partialLen += len;
        }
        return;
      }
      if (nl === -1) return;
      this.lineNo++;
      if (this.overlongBytes > 0) {
        this.sink.overlong(this.lineNo, this.overlongBytes);
        this.overlongBytes = 0;
      } else {
        let text: string;
        if (this.partialLen > 0) {
          this.partial.push(chunk.subarray(start, end));
          text = Buffer.concat(this.partial, this.partialLen + len).toString('utf8');
          this.partial = [];
          this.partialLen = 0;
        } else {
          text = chunk.toString('utf8', start, end);
        }
        if (text.endsWith('\r')) text = text.slice(0, -1);
        this.sink.line(text, this.lineNo, true);
      }
      start = nl + 1;
    }
  }

  /** End of input: a last line without a newline is delivered (unterminated). */
  end(): void {
    if (this.overlongBytes > 0) {
      this.lineNo++;
      this.sink.overlong(this.lineNo, this.overlongBytes);
      this.overlongBytes = 0;
    } else if (this.partialLen > 0) {
      this.lineNo++;
      const text = Buffer.concat(this.partial, this.partialLen).toString('utf8');
      this.partial = [];
      this.partialLen = 0;
      this.sink.line(text, this.lineNo, false);
    }
  }

  get lines(): number {
    return this.lineNo;
  }
}
