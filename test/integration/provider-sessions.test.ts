/**
 * One provider session per connection per node: the sync actor, the poller,
 * drift runs and backfills that open a session for the same connection get
 * the same client, so the provider's budget (Xero: 5 requests in flight,
 * 60 a minute) holds across all of them and background work yields to live
 * traffic it shares the connection with. Real engine on Postgres and NATS,
 * the Xero sandbox with its limits on.
 */
import { Xero } from "@concord/providers/xero/Adapter"
import * as XeroSandbox from "@concord/providers/xero/Sandbox"
import { type ConnectionInfo, ProviderSessions, SyncStore } from "@concord/reconciler/Ports"
import { Effect, Exit, Option, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sandboxEnv } from "../support/child-engine.ts"
import { startEngine, type TestEngine } from "../support/engine.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = `
version: 1
tenant: shared
connections:
  - id: shared-xero
    provider: xero
    entities:
      contact: { direction: both }
`
const IDLE_MS = 1_500
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.skipIf(!servicesAvailable)("provider sessions (real engine, Xero sandbox with limits on)", () => {
  let engine: TestEngine
  let sandbox: XeroSandbox.XeroSandboxHandle
  const scope = Effect.runSync(Scope.make())
  const run = <A, E>(effect: Effect.Effect<A, E, any>): Promise<A> => engine.runtime.runPromise(effect as Effect.Effect<A, E, never>)
  const connection = (): Promise<ConnectionInfo> =>
    run(Effect.flatMap(SyncStore, (s) => s.connection("shared-xero")).pipe(Effect.map(Option.getOrThrow)))

  beforeAll(async () => {
    sandbox = await Effect.runPromise(XeroSandbox.start({ limits: true, accounts: 2 }).pipe(Scope.provide(scope)))
    engine = await startEngine({
      env: {
        // The adapter's own pacing stays on: the sandbox enforces Xero's limits.
        ...sandboxEnv(sandbox, { unlimited: false }),
        CONCORD_SESSION_IDLE_MS: String(IDLE_MS)
      }
    })
    expect((await engine.call("PUT", "/v1/tenants/shared", { key: engine.adminKey, raw: tenantYaml, headers: { "content-type": "application/yaml" } })).status).toBe(200)
    const t = sandbox.issueTokens(sandbox.accounts)
    const creds = await engine.call("PUT", "/v1/tenants/shared/connections/shared-xero/credentials", {
      key: engine.adminKey,
      body: { accountId: sandbox.accounts[0], accessToken: t.access_token, refreshToken: t.refresh_token, expiresIn: t.expires_in }
    })
    expect(creds.status, JSON.stringify(creds.body)).toBe(200)
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
    delete process.env.CONCORD_SESSION_IDLE_MS
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("gives everyone working on a connection the same client, so its request budget and priorities hold across them", async () => {
    const info = await connection()
    // Two holders at once, as the sync actor (live traffic) and a drift run (background) would be.
    const result = await run(Effect.scoped(Effect.gen(function*() {
      const sessions = yield* ProviderSessions
      const [live, background] = yield* Effect.all([sessions.open(info), sessions.open(info)], { concurrency: 2 })
      expect(live.client).toBe(background.client)
      expect(live.provider).toBe(Xero)

      // Every request takes 300 ms at the provider: ten background reads fill Xero's 5 slots and queue;
      // three live reads sent just after them must go ahead of the queued background ones.
      sandbox.faults.set({ latencyMs: 300 })
      const throttledBefore = sandbox.limits.stats.throttled
      const finished: Array<string> = []
      const read = (client: typeof live.client, priority: "live" | "background", name: string) =>
        client.withPriority(priority, client.listPage("contact")).pipe(Effect.tap(() => Effect.sync(() => finished.push(name))))
      const backgroundReads = Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => read(background.client, "background", `bg${i}`), { concurrency: "unbounded", discard: true })
      const liveReads = Effect.andThen(Effect.sleep(50), Effect.forEach([0, 1, 2], (i) => read(live.client, "live", `live${i}`), { concurrency: "unbounded", discard: true }))
      yield* Effect.all([backgroundReads, liveReads], { concurrency: 2, discard: true })
      sandbox.faults.reset()
      return { finished, throttled: sandbox.limits.stats.throttled - throttledBefore }
    })))
    // Never more than Xero's 5 in flight for the connection: the provider refused nothing.
    expect(result.throttled).toBe(0)
    expect(result.finished).toHaveLength(13)
    // The live reads finished before the background reads that were still queued when they arrived.
    const lastLive = Math.max(...["live0", "live1", "live2"].map((n) => result.finished.indexOf(n)))
    expect(lastLive).toBeLessThan(10)
    expect(result.finished.slice(-3).every((n) => n.startsWith("bg")), result.finished.join(",")).toBe(true)
  }, 60_000)

  it("keeps the session between uses, closes it once unused for the idle time, and opens a new one for a new account", async () => {
    const info = await connection()
    const open = Effect.scoped(Effect.map(Effect.flatMap(ProviderSessions, (s) => s.open(info)), (s) => s.client))
    const first = await run(open)
    // Released, but within the idle time: the same client (its token and its budget) comes back.
    expect(await run(open)).toBe(first)
    // Unused for longer than the idle time (and one sweep): closed; the next open builds a new one.
    await sleep(IDLE_MS * 2 + 500)
    const later = await run(open)
    expect(later).not.toBe(first)
    // Held across the idle time: kept.
    const held = await run(Effect.scoped(Effect.gen(function*() {
      const sessions = yield* ProviderSessions
      const a = yield* sessions.open(info)
      yield* Effect.sleep(IDLE_MS * 2 + 500)
      const b = yield* sessions.open(info)
      return a.client === b.client
    })))
    expect(held).toBe(true)
    // The connection now points at another Xero organisation: a new client, with that organisation's budget.
    const moved = await run(Effect.scoped(Effect.gen(function*() {
      const session = yield* (yield* ProviderSessions).open({ ...info, accountId: sandbox.accounts[1] as string })
      return { client: session.client, page: yield* session.client.listPage("contact") }
    })))
    expect(moved.client).not.toBe(later)
    expect(Array.isArray(moved.page.records)).toBe(true)
  }, 60_000)

  it("opens a session prepared with its batch's credentials (one query for a poller's batch) without reading them again", async () => {
    const info = await connection()
    await sleep(IDLE_MS * 2 + 500)
    const sql = <A extends object>(f: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) => run(Effect.flatMap(SqlClient.SqlClient, f))
    const [row] = await sql<Record<string, unknown>>((q) => q`SELECT * FROM credentials WHERE connection_id = 'shared-xero'`)
    expect(row).toBeDefined()
    try {
      await run(Effect.flatMap(ProviderSessions, (s) => s.prepare(["shared-xero", "no-such-connection"])))
      // Gone from the store after the batch read: a session that read them again would find none.
      await sql((q) => q`DELETE FROM credentials WHERE connection_id = 'shared-xero'`)
      const page = await run(Effect.scoped(Effect.gen(function*() {
        const session = yield* (yield* ProviderSessions).open(info)
        return yield* session.client.listPage("contact")
      })))
      expect(Array.isArray(page.records)).toBe(true)
    } finally {
      await sql((q) => q`INSERT INTO credentials ${q.insert(row as Record<string, unknown>)} ON CONFLICT (connection_id) DO NOTHING`)
    }
  }, 60_000)
})
