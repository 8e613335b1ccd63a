// The project's one seeded random generator, so that every run and trial replays from its seed.
/** xorshift32: a small seeded generator, so a run replays from its seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** Uniform float in [0, 1). */
  float(): number {
    return this.next() / 2 ** 32;
  }
  /** Uniform integer in [0, n). */
  below(n: number): number {
    return this.next() % n;
  }
  /** Log-uniform integer in [1, max]: small and large sizes both get exercised. */
  logUniform(max: number): number {
    return Math.max(1, Math.min(max, Math.floor(Math.exp((this.next() / 2 ** 32) * Math.log(max + 1)))));
  }
}
