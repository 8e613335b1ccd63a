// The README and docs are what users run: every `npm run NAME` they name must be a script in
// package.json (with .npmrc's loglevel=silent, npm prints nothing for a missing script and exits 1,
// so a missing one would look like a command that silently did nothing).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const scripts = Object.keys((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];

/** Commands a document tells a user to run, `npm run NAME`; prose that says a command does not exist yet is skipped. */
function namedScripts(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/npm run ([a-z][a-z0-9:-]*)/g)) names.add(m[1]!);
  return [...names];
}

describe('documented commands', () => {
  for (const doc of docs) {
    it(`${doc}: every npm run command it names exists`, () => {
      const text = readFileSync(join(root, doc), 'utf8');
      const missing = namedScripts(text).filter((n) => !scripts.includes(n));
      expect(missing).toEqual([]);
    });
  }
  it('finds the commands in a document (the check can fail)', () => {
    expect(namedScripts('run `npm run vm -- --vcpus 8` then npm run bench:vm and npm run nosuch')).toEqual(['vm', 'bench:vm', 'nosuch']);
  });
});
