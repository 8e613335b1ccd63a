// The decrypted-memory arena: page-granular bump carving up to a fixed capacity, seen alike from any
// handle attached to the same buffers; set_memory_decrypted's modelled cost.
import { describe, expect, it } from 'vitest';
import { InputError, InvariantError } from '../../src/errors.js';
import { DecryptedArena, setMemoryDecrypted } from '../../src/memory/arena.js';

describe('DecryptedArena', () => {
  it('carves page-aligned ranges in order and refuses what does not fit', () => {
    const arena = DecryptedArena.create(64 * 1024);
    expect(arena.carve(4096)).toBe(0);
    expect(arena.carve(1)).toBe(4096); // rounded up to a page
    const other = DecryptedArena.attach(arena.shared);
    expect(other.carve(40 * 1024)).toBe(8192);
    expect(arena.carve(16 * 1024 + 1)).toBe(-1); // 5 pages wanted, 4 left
    expect(arena.carve(16 * 1024)).toBe(48 * 1024);
    expect(arena.carve(4096)).toBe(-1);
    expect(arena.stats()).toEqual({ capacity_bytes: 65536, used_bytes: 65536, carves: 4, failures: 2 });
    expect(other.data).toHaveLength(65536);
  });
  it('refuses a capacity that is not whole pages or too large', () => {
    expect(() => DecryptedArena.create(1000, '--decrypted-arena')).toThrow(/--decrypted-arena: 1000 bytes is not valid/);
    expect(() => DecryptedArena.create(4 * 1024 ** 3 + 4096)).toThrow(InputError);
  });
});

describe('setMemoryDecrypted', () => {
  it('costs the latency per MiB it is given', () => {
    expect(setMemoryDecrypted(0x10_0000, 4 * 1024 * 1024, 250)).toBe(1000);
    expect(setMemoryDecrypted(0x10_0000, 4096, 0)).toBe(0);
    expect(() => setMemoryDecrypted(0x10_0001, 4096, 0)).toThrow(InvariantError);
  });
});
