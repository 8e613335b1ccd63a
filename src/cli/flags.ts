// Command-line flags: `--name value` or `--name=value`; booleans as `--name`, `--name=on|off`.
// Unknown flags and missing values are InputErrors naming the accepted flags; `--help` (or `-h`)
// anywhere asks for the usage, built from the same specs: each flag's accepted form and default.
// A flag with a configuration variable (`env`) takes its default from it (.env.example, ./.env, the
// environment); the flag, when given, wins over every layer.
import { printable, quote } from '../util/quote.js';
import { configLayer, configValue, envOrigin } from '../config.js';
import { HelpRequested, InputError } from '../errors.js';

export interface FlagSpec {
  name: string;
  kind: 'string' | 'boolean';
  help: string;
  /** The accepted form of the value, shown in the usage (e.g. N, SIZE, DURATION, normal|json). */
  form?: string;
  /** The configuration variable that holds the flag's default (a COCO_* key of .env.example). */
  env?: string;
  /**
   * The default without a variable, or what the variable's empty value means, for the usage
   * (e.g. "the CoCo rule", "none"). A flag with neither `env` nor `default` has no default.
   */
  default?: string;
  /** May be given more than once; every value is kept (see ParsedFlags.all). */
  repeatable?: boolean;
}

/** A value and the name of where it came from, for messages: "--vcpus" or "COCO_VCPUS (.env)". */
export interface Setting {
  value: string;
  what: string;
  /** Precedence of the origin: 0 .env.example, 1 .env, 2 environment, 3 flag. */
  rank: number;
}

const RANK: Record<string, number> = { '.env.example': 0, '.env': 1, environment: 2 };

/** Flag values by name (the last one given); `all` has every value of a repeatable flag, in order. */
export class ParsedFlags extends Map<string, string> {
  private readonly every = new Map<string, string[]>();
  private readonly specs = new Map<string, FlagSpec>();
  constructor(specs: readonly FlagSpec[] = []) {
    super();
    for (const s of specs) this.specs.set(s.name, s);
  }
  add(name: string, value: string): void {
    this.set(name, value);
    const list = this.every.get(name) ?? [];
    list.push(value);
    this.every.set(name, list);
  }
  all(name: string): string[] {
    return this.every.get(name) ?? [];
  }
  /**
   * The flag's value if given, else its variable's (the layers of src/config.ts), else `fallback`.
   * One precedence for every tool: flag, environment, ./.env, .env.example.
   */
  setting(name: string, fallback = ''): Setting {
    const spec = this.specs.get(name);
    if (spec === undefined) throw new Error(`flag --${name} has no spec`);
    if (this.has(name)) return { value: this.get(name)!, what: `--${name}`, rank: 3 };
    if (spec.env !== undefined) return { value: configValue(spec.env), what: envOrigin(spec.env), rank: RANK[configLayer(spec.env)]! };
    return { value: fallback, what: `--${name}`, rank: -1 };
  }
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], tool: string, about?: string): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out = new ParsedFlags(specs);
  const accepted = () => specs.map((s) => `--${s.name}`).join(', ');
  if (argv.includes('--help') || argv.includes('-h')) throw new HelpRequested(usage(specs, tool, about));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      throw new InputError('EBADFLAG', `unexpected argument ${quote(arg)}; ${tool} accepts only flags: ${accepted()} (see --help)`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new InputError('EBADFLAG', `unknown flag --${printable(name)}; accepted: ${accepted()} (see --help)`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'boolean') {
      // `--flag`, or `--flag on|off` when the next word is a boolean value.
      const next = argv[i + 1]?.trim().toLowerCase();
      if (next !== undefined && BOOL_WORDS.includes(next)) {
        value = next;
        i++;
      } else value = 'on';
    }
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new InputError('EBADFLAG', `--${name} needs a value, ${formOf(spec)} (${spec.help})`);
      value = next;
      i++;
    }
    if (out.has(name) && spec.repeatable !== true) {
      throw new InputError('EBADFLAG', `--${name} given twice; give it once (${spec.help})`);
    }
    out.add(name, value);
  }
  return out;
}

function formOf(s: FlagSpec): string {
  return s.kind === 'boolean' ? 'on|off' : (s.form ?? 'VALUE');
}

/** The default a flag has now (its variable's value, through the layers), as the usage shows it. */
function defaultText(s: FlagSpec): string | undefined {
  if (s.env !== undefined) {
    let v: string;
    try {
      v = configValue(s.env);
    } catch {
      v = '';
    }
    const shown = v === '' ? (s.default ?? 'none') : v;
    const layer = configLayer(s.env);
    return `${shown}; ${s.env}${layer === '.env.example' ? '' : ` from ${layer}`}`;
  }
  return s.default;
}

/** The usage text of a tool: one line per flag with its accepted form and default, from its specs. */
export function usage(specs: readonly FlagSpec[], tool: string, about?: string): string {
  const forms = specs.map((s) => `--${s.name} ${s.kind === 'boolean' ? '[on|off]' : (s.form ?? 'VALUE')}`);
  const w = Math.max(...forms.map((f) => f.length));
  const lines = specs.map((s, i) => {
    const d = defaultText(s);
    return `  ${forms[i]!.padEnd(w)}  ${s.help}${s.repeatable === true ? ' (repeatable)' : ''}${d !== undefined ? ` [default: ${d}]` : ''}`;
  });
  return [
    `usage: npm run ${tool} -- [flags]`, ...(about !== undefined ? [about] : []), ...lines,
    'Defaults: .env.example (COCO_*), overridden by ./.env, then by the environment, then by the flags.', '',
  ].join('\n');
}

const BOOL_WORDS = ['on', 'off', 'true', 'false', '1', '0', 'yes', 'no'];

/** on/off, true/false, 1/0, yes/no. */
export function parseOnOff(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(t)) return true;
  if (['off', 'false', '0', 'no'].includes(t)) return false;
  throw new InputError('EBADBOOL', `${what}: ${quote(text)} is not valid; expected on or off`);
}
