// The progress line of a long run, for a terminal only: the phase, elapsed / planned time and an ETA
// first, then the counters that fit. It is rewritten in place (\r, then erase to the end of the line),
// so it must never be wider than the terminal: a line one column too wide wraps, and every update then
// starts a new line. The width is read at every update (Node keeps `columns` current on SIGWINCH) and
// the line is redrawn at once on 'resize'.
import { formatBytes } from '../util/units.js';
import { nowMs, wallMs } from '../util/clock.js';
import type { RunPhase } from '../vm/run-state.js';

/** What the line shows. Times are ms; elapsed counts from the start barrier once the run is past boot. */
export interface ProgressState {
  phase: RunPhase;
  elapsedMs: number;
  /** The run's planned length from the start barrier (run-state.ts plannedRunMs); Infinity when unbounded. */
  plannedMs: number;
  /** False when jobs may end before plannedMs (size-based): the ETA is then an upper bound. */
  plannedExact: boolean;
  counters?: {
    iops: number;
    bw_bytes_per_s: number;
    io_tlb_used: number;
    nslabs: number;
    io_tlb_used_hiwater: number;
    map_failures: number;
    io_errors: number;
  };
}

function secs(ms: number): string {
  return ms >= 100_000 ? `${Math.round(ms / 1000)}s` : `${(ms / 1000).toFixed(1)}s`;
}

/** The head: "[running 2.3s/5.0s eta 2.7s]"; boot has no total yet. */
function head(st: ProgressState): string {
  if (st.phase === 'boot') return `[boot ${secs(st.elapsedMs)}]`;
  const total = Number.isFinite(st.plannedMs) ? `/${secs(st.plannedMs)}` : '';
  let eta = '';
  if (st.phase !== 'teardown' && Number.isFinite(st.plannedMs)) {
    eta = ` eta ${st.plannedExact ? '' : '<='}${secs(Math.max(0, st.plannedMs - st.elapsedMs))}`;
  }
  return `[${st.phase} ${secs(st.elapsedMs)}${total}${eta}]`;
}

/**
 * The line for a terminal `columns` wide: the head, then the fields in order of importance while
 * they fit whole; at most columns - 1 characters (a line that fills the last column wraps on
 * some terminals). A head wider than that is cut.
 */
export function progressLine(st: ProgressState, columns: number): string {
  const width = Math.max(1, Math.floor(columns) - 1);
  let line = head(st);
  if (line.length > width) return line.slice(0, width);
  const c = st.counters;
  if (c === undefined) return line;
  const fields = [
    `map_failures=${c.map_failures}`,
    `used=${c.io_tlb_used}/${c.nslabs}`,
    `iops=${Math.round(c.iops)}`,
    `hiwater=${c.io_tlb_used_hiwater}`,
    `bw=${formatBytes(Math.round(c.bw_bytes_per_s))}/s`,
    `io_errors=${c.io_errors}`,
  ];
  // Up to the first field that does not fit, so that the fields keep their places from one update to the next.
  for (const f of fields) {
    if (line.length + 1 + f.length > width) break;
    line += ` ${f}`;
  }
  return line;
}

/** What the display writes to: a TTY stream (process.stderr). */
export interface ProgressStream {
  write(s: string): boolean;
  readonly columns?: number;
  on?(event: 'resize', fn: () => void): unknown;
  off?(event: 'resize', fn: () => void): unknown;
}

/** How often the line is redrawn, samples or not (boot and teardown have none). */
const REDRAW_MS = 200;

/** The live line: call phase() and sample() as the run goes; stop() ends the line. */
export class ProgressDisplay {
  private phaseName: RunPhase = 'boot';
  /** Boot is host time (wallMs); from the barrier on, the run's clock (nowMs, slower under --time-scale). */
  private readonly bootStart = wallMs();
  private runStart: number | null = null;
  private plannedMs = Infinity;
  private plannedExact = false;
  private counters: ProgressState['counters'];
  private drawn = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onResize = (): void => this.draw();

  constructor(private readonly out: ProgressStream) {
    this.timer = setInterval(() => this.draw(), REDRAW_MS);
    this.timer.unref();
    out.on?.('resize', this.onResize);
  }

  /** The run reached the start barrier (running) or its end (teardown). */
  phase(p: { phase: 'running' | 'teardown'; plannedMs: number; plannedExact: boolean }): void {
    if (p.phase === 'running' && this.runStart === null) this.runStart = nowMs();
    this.phaseName = p.phase;
    this.plannedMs = p.plannedMs;
    this.plannedExact = p.plannedExact;
    this.draw();
  }

  sample(s: { phase: RunPhase } & NonNullable<ProgressState['counters']>): void {
    if (this.phaseName !== 'teardown') this.phaseName = s.phase;
    this.counters = s;
    this.draw();
  }

  state(): ProgressState {
    return {
      phase: this.phaseName,
      elapsedMs: this.runStart === null ? wallMs() - this.bootStart : nowMs() - this.runStart,
      plannedMs: this.plannedMs,
      plannedExact: this.plannedExact,
      ...(this.counters !== undefined ? { counters: this.counters } : {}),
    };
  }

  private draw(): void {
    // \x1b[K erases what a longer earlier line left to the right.
    this.out.write(`\r${progressLine(this.state(), this.out.columns ?? 80)}\x1b[K`);
    this.drawn = true;
  }

  /** Erase the line (before other output to the same terminal); the next update draws it again. */
  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  /** Stop redrawing; end the line so that what follows starts on a line of its own. */
  stop(): void {
    clearInterval(this.timer);
    this.out.off?.('resize', this.onResize);
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}
