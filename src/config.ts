// Configuration, read once at start, in layers (each overrides the one before): the defaults in
// .env.example at the project root, a `.env` in the working directory (Node's --env-file
// convention; `npm run` runs in the project root), the environment; then each tool's flags override
// all three. Each tool validates the values it uses, naming the variable and where it came from.
import { printable, quote } from './util/quote.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from './errors.js';
import { projectRoot } from './util/worker-file.js';

/** Where a setting's value came from, lowest precedence first (a flag is above all of them). */
export type ConfigLayer = '.env.example' | '.env' | 'environment';

export interface ConfigSources {
  /** The text of .env.example: every known setting and its default. */
  defaultsText: string;
  /** The text of ./.env, if there is one. */
  dotenvText: string | undefined;
  /** Where ./.env was read from, for messages. */
  dotenvPath: string;
  env: Readonly<Record<string, string | undefined>>;
}

export interface Config {
  values: Readonly<Record<string, string>>;
  layers: Readonly<Record<string, ConfigLayer>>;
}

let loaded: Config | undefined;

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
    let key = line.slice(0, eq).trim();
    // `export KEY=value`, as dotenv files written for a shell have it.
    if (key.startsWith('export ')) key = key.slice('export '.length).trim();
    out[key] = value;
  }
  return out;
}

/**
 * Lay the layers over each other. Every key of .env and every COCO_* variable of the environment
 * must be a known setting (one of .env.example's): a misspelt knob is an error, not a silent default.
 */
export function loadConfig(src: ConfigSources): Config {
  const values: Record<string, string> = parseEnvFile(src.defaultsText);
  const layers: Record<string, ConfigLayer> = {};
  for (const k of Object.keys(values)) layers[k] = '.env.example';
  const known = Object.keys(values);
  const unknown = (key: string, where: string): InputError =>
    new InputError('ECONFIG', `${printable(key)} (${where}) is not a known setting; expected one of ${known.join(', ')} (see .env.example)`);
  if (src.dotenvText !== undefined) {
    for (const [k, v] of Object.entries(parseEnvFile(src.dotenvText))) {
      if (!(k in values)) throw unknown(k, src.dotenvPath);
      values[k] = v;
      layers[k] = '.env';
    }
  }
  for (const [k, v] of Object.entries(src.env)) {
    if (v === undefined || !k.startsWith('COCO_')) continue;
    if (!(k in values)) throw unknown(k, 'environment');
    values[k] = v;
    layers[k] = 'environment';
  }
  return { values: Object.freeze(values), layers: Object.freeze(layers) };
}

/** The process's configuration: .env.example, ./.env, then the environment (read once). */
export function config(): Config {
  if (loaded !== undefined) return loaded;
  const dotenvPath = join(process.cwd(), '.env');
  let dotenvText: string | undefined;
  if (existsSync(dotenvPath)) {
    if (!statSync(dotenvPath).isFile()) throw new InputError('ECONFIG', `${dotenvPath}: not a regular file; expected a KEY=value file like .env.example`);
    dotenvText = readFileSync(dotenvPath, 'utf8');
  }
  loaded = loadConfig({
    defaultsText: readFileSync(join(projectRoot(), '.env.example'), 'utf8'), dotenvText, dotenvPath: '.env', env: process.env,
  });
  return loaded;
}

/** Forget the configuration read, so the next call reads the layers again (tests change the environment). */
export function reloadConfig(): void {
  loaded = undefined;
}

/** Every setting with its value. */
export function configDefaults(): Readonly<Record<string, string>> {
  return config().values;
}

/** One setting by name; a name missing from .env.example is a programming error. */
export function configValue(key: string): string {
  const v = config().values[key];
  if (v === undefined) throw new InputError('ECONFIG', `${key} is not a known setting (see .env.example)`);
  return v;
}

/** Which layer a setting's value came from. */
export function configLayer(key: string): ConfigLayer {
  return config().layers[key] ?? '.env.example';
}

/** How a value's origin is named in error messages: "COCO_VCPUS (environment)". */
export function envOrigin(key: string): string {
  return `${key} (${configLayer(key)})`;
}

/**
 * COCO_DEBUG: on prints an unexpected error's stack trace; empty (the default) or off does not.
 * Checked like every knob: a value that is neither is an InputError naming the variable.
 */
export function debugEnabled(): boolean {
  const v = configValue('COCO_DEBUG').trim().toLowerCase();
  if (v === '' || ['off', 'false', '0', 'no'].includes(v)) return false;
  if (['on', 'true', '1', 'yes'].includes(v)) return true;
  throw new InputError('EBADBOOL', `${envOrigin('COCO_DEBUG')}: ${quote(configValue('COCO_DEBUG'))} is not valid; expected on or off (empty: off)`);
}
