/**
 * Shrinking a failing seed: replay shorter prefixes of its plan (halving
 * while it still fails, a few attempts at most, since fault timing varies
 * between runs) and keep the shortest that still fails.
 */
import { runSeed, type SeedOptions, type SeedResult } from "./Harness.ts"

export const shrink = async (failed: SeedResult, options: SeedOptions, attempts = 3): Promise<SeedResult | undefined> => {
  let best: SeedResult | undefined
  let steps = failed.steps
  for (let i = 0; i < attempts && steps > 4; i++) {
    const candidate = Math.floor(steps / 2)
    const r = await runSeed(failed.seed, { ...options, steps: candidate })
    if (r.ok) break
    best = r
    steps = candidate
  }
  return best
}
