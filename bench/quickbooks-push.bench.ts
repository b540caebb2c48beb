/**
 * QuickBooks push throughput: balanced journal entries through the adapter
 * (batches of 30) into the sandbox with QuickBooks' real limits on (500
 * requests a minute and 10 at once per realm, enforced by the sandbox, 429
 * past them). The ceiling is 500 × 30 = 15,000 operations a minute.
 *
 *   npm run bench -- quickbooks-push            # the 10,000-entry push, then a sustained run to 125 s
 *   npm run bench -- quickbooks-push --quick    # the 10,000-entry push only
 *   npm run bench -- quickbooks-push --entries 20000 --seconds 200
 *   npm run bench -- quickbooks-push --baseline 1000   # naive baseline size (default 600; --no-baseline skips it)
 *
 * The naive baseline writes entries one request each (the adapter's
 * single-entity endpoint, 10 at a time) against a fresh sandbox with the same
 * limits: 500 requests a minute then caps it at 500 entries a minute, 30×
 * below the batched ceiling.
 *
 * Both limits are sliding windows (the adapter's RateLimiter and the
 * sandbox's LimitEmulator): the first minute's 500 requests may start at
 * once, so a 10,000-entry push (334 requests) fits inside one minute's budget
 * and finishes as fast as 10 concurrent requests allow. The per-minute limit
 * only binds beyond that, so the sustained figure is measured after it: the
 * entries the sandbox stored in every 60-second window of a run longer than
 * two minutes. Lost and duplicated entries are counted in the sandbox (each
 * entry carries a unique DocNumber).
 */
import type { Canonical } from "@concord/core"
import { Effect, Redacted } from "effect"
import type { WriteOp } from "../packages/providers/src/Provider.ts"
import * as Tokens from "../packages/providers/src/Tokens.ts"
import { makeClient, QuickBooks } from "../packages/providers/src/quickbooks/Adapter.ts"
import { start } from "../packages/providers/src/quickbooks/Sandbox.ts"

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : fallback
  return Number.isFinite(v) && v > 0 ? v : fallback
}
const quick = args.includes("--quick")
const ENTRIES = arg("entries", 10_000)
const SECONDS = arg("seconds", 125)
const CEILING = 500 * 30
const BASELINE = args.includes("--no-baseline") ? 0 : arg("baseline", 600)

const journal = (n: number): Canonical.CanonicalRecord => ({
  entity: "journal_entry",
  schemaVersion: 1,
  id: "new",
  number: `B-${String(n).padStart(7, "0")}`,
  date: "2026-03-31",
  currency: "USD",
  lines: [
    { postingType: "debit", accountId: "13", amount: 1000 + (n % 9000), description: `bench ${n}` },
    { postingType: "credit", accountId: "1", amount: 1000 + (n % 9000) }
  ],
  memo: "quickbooks-push benchmark",
  status: "posted"
})

const ops = (from: number, count: number): Array<WriteOp> =>
  Array.from({ length: count }, (_, i) => ({ _tag: "Create", entity: "journal_entry", record: journal(from + i), idempotencyKey: `bench-${from + i}` }))

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const pct = (n: number) => `${((n / CEILING) * 100).toFixed(1)}%`

const program = Effect.gen(function*() {
  const sb = yield* start({ limits: true, seed: 42 })
  const store = Tokens.memoryTokenStore({
    bench: (() => {
      const t = sb.issueTokens()
      return { accessToken: Redacted.make(t.access_token), refreshToken: Redacted.make(t.refresh_token), accessTokenExpiresAt: Date.now() + t.expires_in * 1000 }
    })()
  })
  const app = { clientId: sb.clientId, clientSecret: Redacted.make(sb.clientSecret), redirectUri: "http://127.0.0.1/cb", endpoints: sb.endpoints }
  const tokens = yield* Tokens.makeTokenSource({ provider: QuickBooks, app, connectionId: "bench", store })
  const client = yield* makeClient({ connectionId: "bench", accountId: sb.realmId, baseUrl: sb.baseUrl, tokens }, { batchSize: 30 })

  let requests = 0
  let throttledSeen = 0
  sb.onRequest((e) => {
    if (e.path.endsWith("/batch")) requests++
  })

  console.log(`QuickBooks push: ${fmt(ENTRIES)} balanced journal entries, batches of 30, sandbox limits ON (500 requests/minute, 10 concurrent)`)
  const t0 = Date.now()
  const first = yield* client.write(ops(0, ENTRIES))
  const t1 = Date.now()
  let pushed = ENTRIES
  let failed = first.filter((r) => r._tag !== "Written").length
  const pushSeconds = (t1 - t0) / 1000
  const pushRate = ENTRIES / (pushSeconds / 60)
  console.log(`\n10,000-entry push (${fmt(ENTRIES)} entries, ${fmt(requests)} batch requests)`)
  console.log(`  time                 ${pushSeconds.toFixed(1)} s`)
  console.log(`  operations/minute    ${fmt(pushRate)}  (${pct(pushRate)} of the ${fmt(CEILING)}/minute ceiling; ${requests} requests fit inside one minute's 500-request budget, so only the 10-concurrent limit bound this push)`)

  if (!quick) {
    // Keep the queue full until the run is long enough to measure whole minutes past the first.
    const deadline = t0 + SECONDS * 1000
    let next = ENTRIES
    const worker = Effect.gen(function*() {
      while (Date.now() < deadline) {
        const from = next
        next += 3000
        const rs = yield* client.write(ops(from, 3000))
        pushed += 3000
        failed += rs.filter((r) => r._tag !== "Written").length
      }
    })
    yield* Effect.all([worker, worker, worker, worker], { concurrency: 4 })
  }
  const t2 = Date.now()
  throttledSeen = sb.limits.stats.throttled

  // Count in the sandbox: every entry exactly once.
  const stored = sb.records(sb.realmId, "journal_entry")
  const numbers = new Set(stored.map((r) => r.DocNumber as string))
  const lost = pushed - numbers.size
  const duplicated = stored.length - numbers.size

  console.log(`\nsandbox counts`)
  console.log(`  pushed ${fmt(pushed)}, stored ${fmt(stored.length)}, distinct DocNumbers ${fmt(numbers.size)}: lost ${lost}, duplicated ${duplicated}, failed results ${failed}`)
  console.log(`  429 answers from the sandbox: ${throttledSeen}; batch requests: ${fmt(requests)}`)

  if (!quick) {
    const times = stored.map((r) => Date.parse((r.MetaData as { CreateTime: string }).CreateTime)).sort((a, b) => a - b)
    const begin = times[0] ?? t0
    // While new work was still being queued the queue never ran dry: measure only windows inside that period.
    const end = Math.min(times[times.length - 1] ?? t2, t0 + SECONDS * 1000)
    // Entries stored in each 60 s window [s, s + 60 s) that lies wholly inside the saturated period.
    const windows: Array<number> = []
    let j = 0
    for (let i = 0; i < times.length; i++) {
      const s = times[i] as number
      if (s + 60_000 > end) break
      if (i > 0 && s === times[i - 1]) continue
      while (j < times.length && (times[j] as number) < s + 60_000) j++
      windows.push(j - i)
    }
    windows.sort((a, b) => a - b)
    if (windows.length === 0) console.log("  (run too short for a whole 60 s window: use --seconds ≥ 70)")
    const median = windows[Math.floor(windows.length / 2)] ?? 0
    const min = windows[0] ?? 0
    const max = windows[windows.length - 1] ?? 0
    const whole = pushed / ((end - begin) / 60_000)
    console.log(`\nsustained run (${((t2 - t0) / 1000).toFixed(0)} s, ${fmt(pushed)} entries; windows measured while work was queued, the first ${SECONDS} s)`)
    console.log(`  entries stored per 60 s window: median ${fmt(median)}, min ${fmt(min)}, max ${fmt(max)}  (${windows.length} windows)`)
    console.log(`  operations/minute    ${fmt(median)}  = ${pct(median)} of the ${fmt(CEILING)}/minute ceiling (target ≥ 90%); lowest window ${pct(min)}`)
    console.log(`  (whole-run average ${fmt(whole)}/minute includes the first minute's burst)`)
    if (median < CEILING * 0.9) console.log("  BELOW TARGET")
  }
  if (lost !== 0 || duplicated !== 0 || failed !== 0) {
    console.log("  FAILED: entries were lost, duplicated or refused")
    process.exitCode = 1
  }

  if (BASELINE > 0) {
    // The naive way: one request per entry, on a fresh realm (its own limits), 10 at a time.
    const nb = yield* start({ limits: true, seed: 7 })
    const nt = nb.issueTokens()
    const naiveTokens = yield* Tokens.makeTokenSource({
      provider: QuickBooks,
      app: { clientId: nb.clientId, clientSecret: Redacted.make(nb.clientSecret), redirectUri: "http://127.0.0.1/cb", endpoints: nb.endpoints },
      connectionId: "naive",
      store: Tokens.memoryTokenStore({ naive: { accessToken: Redacted.make(nt.access_token), refreshToken: Redacted.make(nt.refresh_token), accessTokenExpiresAt: Date.now() + nt.expires_in * 1000 } })
    })
    const naive = yield* makeClient({ connectionId: "naive", accountId: nb.realmId, baseUrl: nb.baseUrl, tokens: naiveTokens }, { batchSize: 30 })
    let naiveRequests = 0
    nb.onRequest((e) => {
      if (e.method === "POST") naiveRequests++
    })
    console.log(`\nnaive baseline: ${fmt(BASELINE)} entries, one request each (no /batch), 10 at a time, same limits`)
    const n0 = Date.now()
    const rs = yield* Effect.forEach(ops(1_000_000, BASELINE), (op) => naive.write([op]), { concurrency: 10 })
    const naiveSeconds = (Date.now() - n0) / 1000
    const naiveFailed = rs.flat().filter((r) => r._tag !== "Written").length
    const naiveRate = BASELINE / (naiveSeconds / 60)
    console.log(`  time                 ${naiveSeconds.toFixed(1)} s for ${fmt(BASELINE)} entries in ${fmt(naiveRequests)} requests${naiveFailed > 0 ? ` (${naiveFailed} failed)` : ""}`)
    console.log(`  operations/minute    ${fmt(naiveRate)} over this run; sustained ceiling 500/minute (500 requests × 1 entry) vs ${fmt(CEILING)}/minute batched = 30× less`)
    console.log(`  10,000 entries       one by one ≥ ${fmt(((10_000 - 500) / 500) * 60)} s (the first 500 in a burst, then 500 a minute) vs ${pushSeconds.toFixed(1)} s batched above`)
  }
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  console.error(e)
  process.exit(1)
})
