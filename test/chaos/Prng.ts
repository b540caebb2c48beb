/**
 * A small seeded PRNG (mulberry32) so that a chaos seed always generates the
 * same workload and the same fault plan.
 */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [min, max] (inclusive). */
  readonly int: (min: number, max: number) => number
  /** True with probability p. */
  readonly chance: (p: number) => boolean
  /** One element of a non-empty array. */
  readonly pick: <A>(xs: ReadonlyArray<A>) => A
}

export const prng = (seed: number): Prng => {
  let a = (seed ^ 0x9e3779b9) >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)] as never
  }
}
