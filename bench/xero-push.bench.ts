/**
 * Xero push throughput: sales invoices through the adapter (50 per request,
 * `summarizeErrors=false`) into the Xero sandbox with Xero's real limits on
 * (60 calls a minute and 5 at once per tenant, 5,000 a day, enforced by the
 * sandbox with 429s). The ceiling is 60 × 50 = 3,000 invoices a minute.
 *
 *   npm run bench -- xero-push                    # 3,000 invoices
 *   npm run bench -- xero-push --invoices 6000    # a longer, sustained run
 *
 * The per-minute limit is a sliding window on both sides (the adapter's
 * RateLimiter keeps 2% headroom; the sandbox's LimitEmulator answers 429
 * past 60). The clock runs from the first push request to the last answer,
 * and the setup calls (organisation, chart of accounts, items, one contact)
 * count against the same window, as they would against Xero. Every invoice
 * carries a unique number, so lost and duplicated invoices are counted in
 * the sandbox.
 */
import type { Canonical } from "@concord/core"
import { Effect, Redacted, Stream } from "effect"
import type { WriteOp } from "../packages/providers/src/Provider.ts"
import * as Tokens from "../packages/providers/src/Tokens.ts"
import { Xero } from "../packages/providers/src/xero/Adapter.ts"
import { start } from "../packages/providers/src/xero/Sandbox.ts"

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : fallback
  return Number.isFinite(v) && v > 0 ? v : fallback
}
const INVOICES = arg("invoices", 3_000)
const CEILING = 60 * 50

const invoice = (n: number, contactId: string, salesAccountId: string): Canonical.CanonicalRecord => ({
  entity: "invoice",
  schemaVersion: 1,
  id: `app-inv-${n}`,
  number: `BENCH-${String(n).padStart(6, "0")}`,
  contactId,
  date: "2026-06-01",
  dueDate: "2026-06-30",
  currency: "USD",
  lineAmountTypes: "exclusive",
  lines: [
    { description: `Order ${n}`, quantity: "2", unitPrice: "12.5", amount: 25_00, accountId: salesAccountId, taxRateId: "OUTPUT", taxAmount: 250 },
    { description: "Delivery", amount: 5_00 + (n % 100), accountId: salesAccountId, taxRateId: "NONE", taxAmount: 0 }
  ],
  status: "authorised"
})

const program = Effect.gen(function*() {
  const sandbox = yield* start({ limits: true })
  const tenant = sandbox.tenants[0] as string
  const app = { clientId: sandbox.clientId, clientSecret: Redacted.make(sandbox.clientSecret), redirectUri: "http://127.0.0.1:9/cb", endpoints: sandbox.endpoints }
  const issued = sandbox.issueTokens([tenant])
  const store = Tokens.memoryTokenStore({
    bench: { accessToken: Redacted.make(issued.access_token), refreshToken: Redacted.make(issued.refresh_token), accessTokenExpiresAt: Date.now() + issued.expires_in * 1000 }
  })
  const tokens = yield* Tokens.makeTokenSource({ provider: Xero, app, connectionId: "bench", store })
  const client = yield* Xero.client({ connectionId: "bench", accountId: tenant, baseUrl: sandbox.baseUrl, tokens })

  const accounts = yield* Stream.runCollect(client.list("account"))
  const sales = accounts.find((a) => a.record.entity === "account" && a.record.code === "200")?.externalId as string
  const [c] = yield* client.write([{
    _tag: "Create", entity: "contact", idempotencyKey: "bench-contact",
    record: { entity: "contact", schemaVersion: 1, id: "bench-contact", name: "Bench Customer", roles: ["customer"], status: "active" }
  }])
  if (c?._tag !== "Written") return yield* Effect.die(new Error(`setup failed: ${JSON.stringify(c)}`))
  const contactId = c.record.externalId
  const setupCalls = sandbox.stats.requests

  const ops: Array<WriteOp> = Array.from({ length: INVOICES }, (_, n) => ({
    _tag: "Create", entity: "invoice", idempotencyKey: `bench-${n}`, record: invoice(n, contactId, sales)
  }))
  const throttledBefore = sandbox.limits.stats.throttled
  const t0 = performance.now()
  const results = yield* client.write(ops)
  const elapsedMs = performance.now() - t0

  const written = results.filter((r) => r._tag === "Written").length
  const failed = results.filter((r) => r._tag === "Failed")
  const stored = sandbox.records(tenant, "invoice").filter((r) => String(r.InvoiceNumber).startsWith("BENCH-"))
  const numbers = new Set(stored.map((r) => String(r.InvoiceNumber)))
  const lost = INVOICES - numbers.size
  const duplicated = stored.length - numbers.size
  const perMinute = INVOICES / (elapsedMs / 60_000)
  const pushCalls = sandbox.stats.requests - setupCalls

  console.log(`xero-push: ${INVOICES} invoices, 50 per request, limits on (60/min, 5 concurrent, 5,000/day)`)
  console.log(`  elapsed            ${(elapsedMs / 1000).toFixed(1)} s (${pushCalls} push requests after ${setupCalls} setup requests)`)
  console.log(`  throughput         ${perMinute.toFixed(0)} invoices/minute`)
  console.log(`  ceiling            ${CEILING} invoices/minute (60 requests × 50)`)
  console.log(`  of ceiling         ${((perMinute / CEILING) * 100).toFixed(1)}%  (target ≥ 90%)`)
  // The naive way, one invoice per request, is capped by the same 60 requests a minute (and 5,000 a day).
  console.log(`  naive baseline     one invoice per request: at most 60 invoices/minute (${(INVOICES / 60).toFixed(0)} min for these ${INVOICES}; 5,000/day) = ${(perMinute / 60).toFixed(0)}× slower than measured`)
  console.log(`  written / failed   ${written} / ${failed.length}${failed.length > 0 ? `  first failure: ${JSON.stringify(failed[0])}` : ""}`)
  console.log(`  in the sandbox     ${stored.length} stored, ${lost} lost, ${duplicated} duplicated`)
  console.log(`  429s from sandbox  ${sandbox.limits.stats.throttled - throttledBefore}`)
  const ok = lost === 0 && duplicated === 0 && failed.length === 0 && perMinute >= 0.9 * CEILING
  console.log(ok ? "  PASS" : "  BELOW TARGET")
  return ok
})

const ok = await Effect.runPromise(Effect.scoped(program))
process.exit(ok ? 0 : 1)
