/**
 * The chaos runner:
 *
 *   npm run chaos -- --runs 200 [--seed 1] [--concurrency 2] [--operations N] [--no-shrink]
 *                    [--no-faults]       the same workloads on a healthy system (diagnosis)
 *                    [--drop-webhooks]   also drop webhooks (needs the engine's reconciliation to heal)
 *
 * runs seeds S, S+1, …, S+N-1 (each: a seeded workload against the real engine
 * with faults injected, then the convergence checker), prints one line per
 * seed and `N passed, N failed`; exits 1 if any failed. A failing seed prints
 * its failures and its event history, shrunk to the shortest prefix of the
 * plan that still fails when it can.
 *
 * Diagnosis: CHAOS_ENGINE_LOG=<dir> writes every engine process's output of a
 * failing seed there (CHAOS_LOG_LEVEL=info|debug makes it say more);
 * CHAOS_KEEP_DB=1 keeps a failing seed's database.
 */
import { runSeed, type SeedResult } from "./Harness.ts"
import { shrink } from "./Shrink.ts"

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : fallback
  return Number.isFinite(v) ? v : fallback
}
const runs = arg("runs", 10)
const first = arg("seed", 1)
const concurrency = Math.max(1, arg("concurrency", 2))
const operations = args.includes("--operations") ? arg("operations", 60) : undefined
const doShrink = !args.includes("--no-shrink")
const dropWebhooks = args.includes("--drop-webhooks")
const faults = !args.includes("--no-faults")

const seeds = Array.from({ length: runs }, (_, i) => first + i)
const results: Array<SeedResult> = []
const started = Date.now()

const report = (r: SeedResult, shrunk?: SeedResult) => {
  const phases = Object.entries(r.phases).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`).join(", ")
  const reconnected = r.reconnected.length === 0 ? "" : `; the operator reconnected ${r.reconnected.join(", ")} (a grant lost to a SIGKILL during a token rotation)`
  console.log(`seed ${r.seed}: ${r.ok ? "passed" : "FAILED"} in ${(r.ms / 1000).toFixed(1)} s (${r.steps} steps; ${phases}${reconnected})`)
  if (r.ok) return
  const shown = shrunk ?? r
  for (const f of shown.failures.slice(0, 20)) console.log(`  ✗ ${f}`)
  if (shown.failures.length > 20) console.log(`  … ${shown.failures.length - 20} more`)
  console.log(`  history${shrunk === undefined ? "" : ` (shrunk to the first ${shrunk.steps} of ${r.steps} steps; rerun: npm run chaos -- --runs 1 --seed ${r.seed})`}:`)
  for (const h of shown.history) console.log(`    ${h}`)
}

const worker = async () => {
  for (;;) {
    const seed = seeds.shift()
    if (seed === undefined) return
    const options = { ...(operations === undefined ? {} : { operations }), dropWebhooks, faults }
    const r = await runSeed(seed, options)
    results.push(r)
    report(r, !r.ok && doShrink ? await shrink(r, options) : undefined)
  }
}

await Promise.all(Array.from({ length: Math.min(concurrency, runs) }, worker))
const passed = results.filter((r) => r.ok).length
const reconnects = results.filter((r) => r.reconnected.length > 0).map((r) => r.seed)
const failed = results.length - passed
const times = results.map((r) => r.ms).sort((a, b) => a - b)
console.log(`\n${passed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(0)} s (per seed: median ${((times[Math.floor(times.length / 2)] ?? 0) / 1000).toFixed(1)} s, max ${((times.at(-1) ?? 0) / 1000).toFixed(1)} s; concurrency ${concurrency})`)
if (failed > 0) console.log(`failed seeds: ${results.filter((r) => !r.ok).map((r) => r.seed).join(" ")}`)
if (reconnects.length > 0) console.log(`seeds where the operator reconnected QuickBooks after a grant lost to a SIGKILL mid-rotation: ${reconnects.join(" ")}`)
process.exit(failed === 0 ? 0 : 1)
