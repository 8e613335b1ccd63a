// Command-line flags: `--name value` or `--name=value`; booleans as `--name`, `--name=on|off`.
// Unknown flags and missing values are InputErrors naming the accepted flags; `--help` (or `-h`)
// anywhere asks for the usage, built from the same specs.
import { HelpRequested, InputError } from '../errors.js';

export interface FlagSpec {
  name: string;
  kind: 'string' | 'boolean';
  help: string;
  /** May be given more than once; every value is kept (see ParsedFlags.all). */
  repeatable?: boolean;
}

/** Flag values by name (the last one given); `all` has every value of a repeatable flag, in order. */
export class ParsedFlags extends Map<string, string> {
  private readonly every = new Map<string, string[]>();
  add(name: string, value: string): void {
    this.set(name, value);
    const list = this.every.get(name) ?? [];
    list.push(value);
    this.every.set(name, list);
  }
  all(name: string): string[] {
    return this.every.get(name) ?? [];
  }
}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], tool: string): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out = new ParsedFlags();
  const accepted = () => specs.map((s) => `--${s.name}`).join(', ');
  if (argv.includes('--help') || argv.includes('-h')) throw new HelpRequested(usage(specs, tool));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      throw new InputError('EBADFLAG', `unexpected argument "${arg}"; ${tool} accepts only flags: ${accepted()}`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) throw new InputError('EBADFLAG', `unknown flag --${name}; accepted: ${accepted()}`);
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
      if (next === undefined) throw new InputError('EBADFLAG', `--${name} needs a value (${spec.help})`);
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

/** The usage text of a tool: one line per flag, from its specs. */
export function usage(specs: readonly FlagSpec[], tool: string): string {
  const forms = specs.map((s) => `--${s.name}${s.kind === 'boolean' ? ' [on|off]' : ' VALUE'}`);
  const w = Math.max(...forms.map((f) => f.length));
  const lines = specs.map((s, i) => `  ${forms[i]!.padEnd(w)}  ${s.help}${s.repeatable === true ? ' (repeatable)' : ''}`);
  return [`usage: npm run ${tool} -- [flags]`, ...lines, 'Defaults are in .env.example (COCO_*), overridden by the environment, then by the flags.', ''].join('\n');
}

const BOOL_WORDS = ['on', 'off', 'true', 'false', '1', '0', 'yes', 'no'];

/** on/off, true/false, 1/0, yes/no. */
export function parseOnOff(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(t)) return true;
  if (['off', 'false', '0', 'no'].includes(t)) return false;
  throw new InputError('EBADBOOL', `${what}: "${text}" is not valid; expected on or off`);
}
