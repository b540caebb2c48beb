/**
 * Test-suite guards loaded before every test file.
 *
 * `it.scoped` in @effect/vitest 4 is vitest's deprecated fixture API, not an
 * Effect test: a test written with it silently never runs. Make that loud.
 */
import { it as effectIt } from "@effect/vitest"
import { it as vitestIt, test as vitestTest } from "vitest"

const refuse = () => {
  throw new Error("it.scoped is not an Effect test in @effect/vitest 4 (it would silently not run): use it.effect (scoped, TestClock) or it.live (scoped, real clock)")
}
for (const target of [effectIt, vitestIt, vitestTest] as ReadonlyArray<object>) {
  try {
    Object.defineProperty(target, "scoped", { value: refuse, configurable: true, writable: true })
  } catch {
    // not patchable: nothing to guard
  }
}
