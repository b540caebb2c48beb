/**
 * Convergence under faults, as part of `npm test`: five chaos seeds (a seeded
 * workload of app creates/updates/deletes, accountant edits and GL-mapped
 * transactions against both sandboxes, while the engine is SIGKILLed and
 * restarted, a private nats-server restarted, Postgres backends terminated and
 * the sandboxes storm, fail, hang and expire tokens), each followed by the
 * convergence checker. `npm run chaos -- --runs N` runs many more.
 */
import { describe, expect, it } from "vitest"
import { servicesAvailable } from "../support/services.ts"
import { runSeed } from "./Harness.ts"

const seeds = (process.env.CHAOS_SEEDS ?? "1,2,3,4,5").split(",").map(Number)

describe.skipIf(!servicesAvailable)("chaos: convergence under faults", () => {
  for (const seed of seeds) {
    it(`seed ${seed} converges`, async () => {
      const r = await runSeed(seed)
      const report = r.ok
        ? ""
        : [`seed ${seed} failed (rerun: npm run chaos -- --runs 1 --seed ${seed})`, ...r.failures.map((f) => `  ✗ ${f}`), "history:", ...r.history.map((h) => `  ${h}`)].join("\n")
      expect(r.failures, report).toEqual([])
    }, 300_000)
  }
})
