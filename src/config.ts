// Configuration defaults: .env.example at the project root, overridden by the environment, read
// once at start. Flags override both; each tool validates the values it uses, naming the variable.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from './errors.js';
import { projectRoot } from './util/worker-file.js';

let defaults: Readonly<Record<string, string>> | undefined;

/** Parse KEY=value lines; '#' starts a comment line; values may be quoted. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
      value = value.slice(1, -1);
    }
    out[line.slice(0, eq).trim()] = value;
  }
  return out;
}

/** Every COCO_* default from .env.example, with the environment's values laid over them. */
export function configDefaults(): Readonly<Record<string, string>> {
  if (defaults !== undefined) return defaults;
  const merged = parseEnvFile(readFileSync(join(projectRoot(), '.env.example'), 'utf8'));
  for (const key of Object.keys(merged)) {
    const v = process.env[key];
    if (v !== undefined) merged[key] = v;
  }
  defaults = Object.freeze(merged);
  return defaults;
}

/** One default by name; a name missing from .env.example is a programming error. */
export function configValue(key: string): string {
  const v = configDefaults()[key];
  if (v === undefined) throw new InputError('ECONFIG', `${key} is not a known setting (see .env.example)`);
  return v;
}

/** How a value's origin is named in error messages. */
export function envOrigin(key: string): string {
  return process.env[key] !== undefined ? `${key} (environment)` : `${key} (.env.example)`;
}
