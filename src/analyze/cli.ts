// `npm run analyze -- [run.ndjson | -] [--output-format normal|json] [--html report.html]`
import { quote } from '../util/quote.js';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { configValue, envOrigin } from '../config.js';
import { InputError } from '../errors.js';
import { chartPointsSetting } from '../log/settings.js';
import { formatText, skippedWarning } from './format.js';
import { renderHtml } from './html.js';
import { analyzeFile, analyzeStream } from './run.js';

export const ANALYZE_USAGE = 'npm run analyze -- [run.ndjson | -] [--output-format normal|json] [--html report.html]';

export type OutputFormat = 'normal' | 'json';

export interface AnalyzeArgs {
  /** A path, or undefined for stdin. */
  input: string | undefined;
  outputFormat: OutputFormat;
  html: string | undefined;
  help: boolean;
}

function parseFormat(text: string, what: string): OutputFormat {
  if (text === 'normal' || text === 'json') return text;
  throw new InputError('EBADFORMAT', `${what}: ${quote(text)} is not an output format; expected normal or json`);
}

/** Parse the command line; anything unexpected is an InputError naming the accepted form. */
export function parseAnalyzeArgs(argv: readonly string[]): AnalyzeArgs {
  const usage = `usage: ${ANALYZE_USAGE}`;
  const args: AnalyzeArgs = { input: undefined, outputFormat: 'normal', html: undefined, help: false };
  let formatSet = false;
  let inputSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[i + 1];
      if (v === undefined || (v.startsWith('-') && v !== '-')) throw new InputError('EUSAGE', `${name} needs a value; ${usage}`);
      i++;
      return v;
    };
    if (name === '--output-format') {
      args.outputFormat = parseFormat(value(), '--output-format');
      formatSet = true;
    } else if (name === '--html') {
      args.html = value();
      if (args.html === '') throw new InputError('EUSAGE', `--html needs a file name; ${usage}`);
    } else if (name === '-h' || name === '--help') {
      args.help = true;
    } else if (a === '-' || !a.startsWith('-')) {
      if (inputSet) throw new InputError('EUSAGE', `more than one input (${quote(args.input ?? '-')} and ${quote(a)}); ${usage}`);
      inputSet = true;
      args.input = a === '-' ? undefined : a;
    } else {
      throw new InputError('EUSAGE', `unknown option ${quote(a)}; ${usage}`);
    }
  }
  if (!formatSet) args.outputFormat = parseFormat(configValue('COCO_OUTPUT_FORMAT'), envOrigin('COCO_OUTPUT_FORMAT'));
  return args;
}

export interface AnalyzeIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** Run the analyzer CLI. Returns the exit status (InputErrors are thrown for the caller to map). */
export async function runAnalyzeCli(argv: readonly string[], io: AnalyzeIo): Promise<number> {
  const args = parseAnalyzeArgs(argv);
  if (args.help) {
    io.stdout([
      `usage: ${ANALYZE_USAGE}`,
      '  Reads a coco-swiotlb run log (NDJSON, from the file or stdin) and prints the run\'s configuration,',
      '  timeline, map failures, throttle waits, stalls and final report; --html also writes a report page.',
      '  run.ndjson | -                 the log to read; - or nothing reads stdin [default: stdin]',
      `  --output-format normal|json    the analysis as text or as one JSON document [default: ${configValue('COCO_OUTPUT_FORMAT')}; COCO_OUTPUT_FORMAT]`,
      '  --html FILE                    also write the HTML report (chart and tables) to FILE [default: none]',
      `  Chart points: COCO_ANALYZE_CHART_POINTS (50..100000) [default: ${configValue('COCO_ANALYZE_CHART_POINTS')}].`,
      '',
    ].join('\n'));
    return 0;
  }
  const chartPoints = chartPointsSetting();
  let result;
  if (args.input !== undefined) {
    if (!existsSync(args.input)) throw new InputError('ENOENT', `${args.input}: no such file; usage: ${ANALYZE_USAGE}`);
    if (!statSync(args.input).isFile()) throw new InputError('EISDIR', `${args.input}: not a file; usage: ${ANALYZE_USAGE}`);
    result = await analyzeFile(args.input, { chartPoints });
  } else {
    if (io.stdin.isTTY === true) throw new InputError('EUSAGE', `no input: name a log file or pipe one in; usage: ${ANALYZE_USAGE}`);
    result = await analyzeStream(io.stdin as NodeJS.ReadableStream as import('node:stream').Readable, { source: 'stdin', chartPoints });
  }
  const warning = skippedWarning(result.analysis);
  if (warning !== undefined) io.stderr(`${warning}\n`);
  if (args.html !== undefined) {
    try {
      writeFileSync(args.html, renderHtml(result.analysis, result.chart));
    } catch (err) {
      throw new InputError('EHTML', `--html ${args.html}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; expected a writable file path`);
    }
  }
  io.stdout(args.outputFormat === 'json' ? `${JSON.stringify(result.analysis, null, 2)}\n` : formatText(result.analysis));
  if (args.html !== undefined && args.outputFormat !== 'json') io.stdout(`\nHTML report written to ${args.html}\n`);
  return 0;
}
