import { Config } from "@concord/core"
import { Errors, type Provider } from "@concord/providers"
import { StoreError, SyncStore } from "@concord/reconciler/Ports"
import { parkBatch, runBatch } from "@concord/reconciler/Sync"
import type { WorkItem } from "@concord/reconciler/Work"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll } from "vitest"
import * as PgSyncStore from "../../packages/server/src/storage/PgSyncStore.ts"
import * as Audit from "../../packages/server/src/storage/Audit.ts"
import { migratedDatabase, seedTenant } from "../support/db.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { freshDatabase, servicesAvailable } from "../support/services.ts"

const tenantYaml = (policy: string) => `
version: 1
tenant: acme
connections:
  - id: acme-mem
    provider: memory
    entities:
      account: { direction: pull }
      contact: { direction: both, policy: ${policy} }
      invoice: { direction: both, policy: ${policy} }
      journal_entry: { direction: push, policy: app_wins }
    mapping:
      invoice:
        customFields: { order_id: "Order ID" }
`

const parseTenant = (yaml: string) => {
  const parsed = Config.parseTenantYaml(yaml)
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues))
  return parsed.config
}

const contact = { entity: "contact", schemaVersion: 1, id: "cust-1", name: "Ada Lovelace", roles: ["customer"], status: "active" }
const invoice = (patch: Record<string, unknown> = {}) => ({
  entity: "invoice",
  schemaVersion: 1,
  id: "inv-1",
  contactId: "cust-1",
  date: "2026-03-01",
  currency: "USD",
  lineAmountTypes: "exclusive",
  lines: [{ lineId: "a", description: "Latte", amount: 450, accountId: "4000" }],
  status: "authorised",
  memo: "first",
  customFields: { order_id: "A-1", internal_note: "app only" },
  ...patch
})

let seq = 0
const appChange = (record: Record<string, unknown>): WorkItem => ({
  key: `m${++seq}`,
  entity: record.entity as WorkItem["entity"],
  recordId: record.id as string,
  source: "app",
  appChange: { record: record as never, deleted: false, seq }
})

describe.skipIf(!servicesAvailable)("sync pipeline on Postgres", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => {
    await db?.drop()
  })

  const setup = (policy = "review") =>
    Effect.gen(function*() {
      const tenant = parseTenant(tenantYaml(policy))
      yield* seedTenant(tenant)
      const mem = makeMemoryProvider()
      // The accountant's chart of accounts already exists at the provider.
      mem.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
      const store = yield* SyncStore
      const connection = Option.getOrThrow(yield* store.connection("acme-mem"))
      const client = yield* mem.provider.client({ connectionId: connection.id, accountId: "acct", baseUrl: "", tokens: undefined as unknown as Provider.TokenSource })
      const session = { provider: mem.provider, client }
      const run = (items: ReadonlyArray<WorkItem>) => runBatch(connection, session, items)
      return { mem, run, connection }
    })

  const layer = () => PgSyncStore.layer.pipe(Layer.provideMerge(migratedDatabase(db.url)))

  it.effect("pushes an app invoice with its dependencies, pulls what the provider assigns, and replays harmlessly", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { mem, run } = yield* setup()
      yield* run([appChange(contact)])
      const first = yield* run([appChange(invoice())])
      expect([...first.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done", status: "synced" })])
      const [stored] = mem.records("invoice")
      // References were translated to the provider's ids; the account was found by its code.
      const contactExt = mem.records("contact")[0]?.externalId
      const accountExt = mem.records("account")[0]?.externalId
      expect(stored).toMatchObject({ contactId: contactExt, memo: "first", customFields: { "Order ID": "A-1" } })
      expect((stored?.lines as Array<{ accountId: string }>)[0]?.accountId).toBe(accountExt)
      expect(stored?.customFields).not.toHaveProperty("internal_note")
      // Replaying the same message writes nothing again.
      const writes = mem.stats.creates + mem.stats.updates
      yield* run([{ ...appChange(invoice()), key: "replay" }])
      expect(mem.stats.creates + mem.stats.updates).toBe(writes)
      expect(mem.records("invoice")).toHaveLength(1)
      const links = yield* sql<{ entity: string; record_id: string }>`SELECT entity, record_id FROM links ORDER BY entity`
      expect(links.map((l) => `${l.entity}:${l.record_id}`)).toEqual(["account:4000", "contact:cust-1", "invoice:inv-1"])
      const verify = yield* Audit.verify("acme")
      expect(verify.ok).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.effect("brings an accountant's edit back to the app with a change event", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* sql`TRUNCATE outbox`
      const { mem, run } = yield* setup()
      yield* run([appChange(contact), appChange(invoice())])
      const ext = mem.records("invoice")[0]?.externalId as string
      mem.accountant.edit("invoice", ext, { memo: "fixed by accountant" })
      const r = yield* run([{ key: "wh1", entity: "invoice", externalId: ext, source: "provider" }])
      expect([...r.outcomes.values()][0]).toMatchObject({ _tag: "Done", status: "synced" })
      const rows = yield* sql<{ data: { memo: string; customFields: Record<string, unknown> } }>`SELECT data FROM records WHERE record_id = 'inv-1'`
      expect(rows[0]?.data.memo).toBe("fixed by accountant")
      // App-only custom fields survive the pull.
      expect(rows[0]?.data.customFields).toEqual({ order_id: "A-1", internal_note: "app only" })
      const events = yield* sql<{ subject: string; payload: { type: string; changedFields: Array<string> } }>`SELECT subject, payload FROM outbox ORDER BY id`
      const change = events.find((e) => e.subject === "concord.changes.acme.memory.invoice" && e.payload.changedFields.includes("memo"))
      expect(change?.payload.type).toBe("record.changed")
    }).pipe(Effect.provide(layer())))

  it.effect("merges changes to different fields from both sides after a stale write", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { mem, run } = yield* setup()
      yield* run([appChange(contact), appChange(invoice())])
      const ext = mem.records("invoice")[0]?.externalId as string
      mem.accountant.edit("invoice", ext, { reference: "PO-7" })
      // The app changes the memo without knowing about the accountant's edit: optimistic write is stale.
      const r = yield* run([appChange(invoice({ memo: "second" }))])
      expect([...r.outcomes.values()][0]).toMatchObject({ _tag: "Done", status: "synced" })
      expect(mem.stats.stale).toBe(1)
      expect(mem.get("invoice", ext)?.record).toMatchObject({ memo: "second", reference: "PO-7" })
      const rows = yield* sql<{ data: { memo: string; reference: string } }>`SELECT data FROM records WHERE record_id = 'inv-1'`
      expect(rows[0]?.data).toMatchObject({ memo: "second", reference: "PO-7" })
    }).pipe(Effect.provide(layer())))

  it.effect("opens a conflict under review and writes neither side for that field", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* sql`TRUNCATE outbox`
      const { mem, run } = yield* setup("review")
      yield* run([appChange(contact), appChange(invoice())])
      const ext = mem.records("invoice")[0]?.externalId as string
      mem.accountant.edit("invoice", ext, { memo: "accountant" })
      const r = yield* run([appChange(invoice({ memo: "app", reference: "R-1" }))])
      expect([...r.outcomes.values()][0]).toMatchObject({ _tag: "Done", status: "conflict" })
      // The non-conflicting field went through; the conflicting one did not, on either side.
      expect(mem.get("invoice", ext)?.record).toMatchObject({ memo: "accountant", reference: "R-1" })
      const app = yield* sql<{ data: { memo: string } }>`SELECT data FROM records WHERE record_id = 'inv-1'`
      expect(app[0]?.data.memo).toBe("app")
      const conflicts = yield* sql<{ path: string; app: unknown; provider: unknown; status: string }>`SELECT path, app, provider, status FROM conflicts`
      expect(conflicts).toEqual([{ path: "memo", app: "app", provider: "accountant", status: "open" }])
      const events = yield* sql<{ subject: string; payload: { conflictId: string } }>`SELECT subject, payload FROM outbox WHERE subject LIKE 'concord.conflicts.%'`
      expect(events).toHaveLength(1)
      expect(events[0]?.payload.conflictId).toMatch(/^cf_/)
      // Syncing again keeps one open conflict, not two.
      yield* run([appChange(invoice({ memo: "app", reference: "R-1" }))])
      const again = yield* sql<{ n: string }>`SELECT count(*) AS n FROM conflicts WHERE status = 'open'`
      expect(Number(again[0]?.n)).toBe(1)
      // …and still has not overwritten the accountant's value.
      expect(mem.get("invoice", ext)?.record).toMatchObject({ memo: "accountant" })
    }).pipe(Effect.provide(layer())))

  it.effect("applies app_wins to a conflict, and deletes propagate", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { mem, run } = yield* setup("app_wins")
      yield* run([appChange(contact), appChange(invoice())])
      const ext = mem.records("invoice")[0]?.externalId as string
      mem.accountant.edit("invoice", ext, { memo: "accountant" })
      yield* run([appChange(invoice({ memo: "app" }))])
      expect(mem.get("invoice", ext)?.record).toMatchObject({ memo: "app" })
      // The app deletes the invoice: it is removed at the provider.
      yield* run([{ key: "del", entity: "invoice", recordId: "inv-1", source: "app", appChange: { deleted: true, seq: ++seq } }])
      expect(mem.records("invoice")).toHaveLength(0)
      // The accountant deletes the contact: the app's record is marked deleted.
      const cext = mem.records("contact")[0]?.externalId as string
      mem.accountant.delete("contact", cext)
      yield* run([{ key: "wh2", entity: "contact", externalId: cext, source: "provider" }])
      const c = yield* sql<{ deleted: boolean }>`SELECT deleted FROM records WHERE record_id = 'cust-1'`
      expect(c[0]?.deleted).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.effect("refuses to push a record whose reference is unknown, naming it, and retries later", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { mem, run } = yield* setup()
      const r = yield* run([appChange(invoice({ id: "inv-2", contactId: "nobody" }))])
      const outcome = [...r.outcomes.values()][0]
      expect(outcome).toMatchObject({ _tag: "Retry", error: { tag: "UnresolvedReference" } })
      expect(outcome?._tag === "Retry" && outcome.error.message).toContain("contact 'nobody'")
      expect(mem.records("invoice")).toHaveLength(0)
    }).pipe(Effect.provide(layer())))

  it.effect("keeps app changes and deletes that arrive while the connection cannot sync, and parks them for resume", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { connection } = yield* setup()
      const store = yield* SyncStore
      yield* parkBatch(connection, [appChange(contact)], "paused")
      const del: WorkItem = { key: "d", entity: "contact", recordId: "cust-1", source: "app", appChange: { deleted: true, seq: ++seq }, operationId: "op-del" }
      const r = yield* parkBatch(connection, [del], "paused")
      expect(r.outcomes.get("d")).toMatchObject({ _tag: "Done", status: "skipped" })
      const rows = yield* sql<{ deleted: boolean; name: string }>`SELECT deleted, data->>'name' AS name FROM records WHERE record_id = 'cust-1'`
      expect(rows[0]).toEqual({ deleted: true, name: "Ada Lovelace" })
      const parked = yield* store.unpark(connection.id)
      expect(parked).toEqual([{ entity: "contact", recordId: "cust-1", operationIds: ["op-del"] }])
      const audit = yield* sql<{ action: string; correlation_id: string }>`SELECT action, correlation_id FROM audit_log WHERE record_id = 'cust-1' AND detail->>'step' = 'park' ORDER BY seq`
      expect(audit.map((a) => a.action)).toEqual(["app_change", "app_delete"])
      expect(audit[1]?.correlation_id).toBe("op-del")
    }).pipe(Effect.provide(layer())))

  // Real clock: the commit step retries with backoff before giving up.
  it.live("never creates twice when the commit fails after the write and the retry is batched differently", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const tenant = parseTenant(tenantYaml("review"))
      yield* seedTenant(tenant)
      const mem = makeMemoryProvider({ idempotency: "request" })
      mem.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
      const real = yield* SyncStore
      // The commit step's own retries (6 attempts) all fail, as in a long database outage.
      let failCommits = 6
      const flaky = SyncStore.of({
        ...real,
        commit: (c) => (c.links.some((l) => l.entity === "contact") && failCommits-- > 0
          ? Effect.fail(new StoreError({ operation: "commit", reason: "connection reset" }))
          : real.commit(c))
      })
      const connection = Option.getOrThrow(yield* real.connection("acme-mem"))
      const client = yield* mem.provider.client({ connectionId: connection.id, accountId: "acct", baseUrl: "", tokens: undefined as unknown as Provider.TokenSource })
      const run = (items: ReadonlyArray<WorkItem>) => runBatch(connection, { provider: mem.provider, client }, items).pipe(Effect.provideService(SyncStore, flaky))
      const contacts = (n: number) => Array.from({ length: n }, (_, i) => appChange({ ...contact, id: `c-${i}`, name: `Customer ${i}` }))
      // First attempt: 3 contacts are created at the provider, then the commit fails (retry).
      const first = yield* run(contacts(3))
      expect([...first.outcomes.values()].every((o) => o._tag === "Retry")).toBe(true)
      expect(mem.records("contact")).toHaveLength(3)
      // The retry carries a fourth contact: a new request composition. Nothing is created twice.
      const second = yield* run(contacts(4))
      expect([...second.outcomes.values()].every((o) => o._tag === "Done")).toBe(true)
      expect(mem.records("contact").map((r) => r.name).sort()).toEqual(["Customer 0", "Customer 1", "Customer 2", "Customer 3"])
      const links = yield* sql<{ n: string }>`SELECT count(DISTINCT external_id) AS n FROM links WHERE entity = 'contact'`
      expect(Number(links[0]?.n)).toBe(4)
    }).pipe(Effect.provide(layer())))

  it.live("refuses to re-create a record whose earlier request is older than the provider remembers, and says why", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* sql`TRUNCATE idempotency`
      const tenant = parseTenant(tenantYaml("review"))
      yield* seedTenant(tenant)
      const mem = makeMemoryProvider({ idempotency: "request" })
      const real = yield* SyncStore
      const flaky = SyncStore.of({ ...real, commit: (c) => (c.links.length > 0 ? Effect.fail(new StoreError({ operation: "commit", reason: "disk full" })) : real.commit(c)) })
      const connection = Option.getOrThrow(yield* real.connection("acme-mem"))
      const client = yield* mem.provider.client({ connectionId: connection.id, accountId: "acct", baseUrl: "", tokens: undefined as unknown as Provider.TokenSource })
      yield* runBatch(connection, { provider: mem.provider, client }, [appChange(contact)]).pipe(Effect.provideService(SyncStore, flaky))
      expect(mem.records("contact")).toHaveLength(1)
      // Two hours later the answer is still not committed: replaying is no longer safe.
      yield* sql`UPDATE idempotency SET created_at = now() - interval '2 hours'`
      const r = yield* runBatch(connection, { provider: mem.provider, client }, [appChange(contact)])
      const outcome = [...r.outcomes.values()][0]
      expect(outcome).toMatchObject({ _tag: "Dead", error: { tag: "ProviderRejected" } })
      expect(outcome?._tag === "Dead" && outcome.error.message).toContain("could post it twice")
      expect(mem.records("contact")).toHaveLength(1)
    }).pipe(Effect.provide(layer())))
  // Found by the final reconciliation of chaos seed 59: a redelivered delete (the record not read again, as it
  // is known removed) rewrote the link as not deleted at the provider, which drift then reported as live there.
  it.effect("a redelivered app delete keeps the link deleted at the provider", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { run } = yield* setup()
      yield* run([appChange(contact), appChange(invoice())])
      const del = () => ({ key: `m${++seq}`, entity: "invoice" as const, recordId: "inv-1", source: "app" as const, appChange: { record: invoice() as never, deleted: true, seq } })
      yield* run([del()])
      const deleted = () => sql<{ provider_deleted: boolean }>`SELECT provider_deleted FROM links WHERE entity = 'invoice' AND record_id = 'inv-1'`
      expect(yield* deleted()).toEqual([{ provider_deleted: true }])
      const again = yield* run([del()])
      expect([...again.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done" })])
      expect(yield* deleted()).toEqual([{ provider_deleted: true }])
    }).pipe(Effect.provide(layer())))

  // Found by the chaos harness (Xero seed 6): our void's answer was lost to a SIGKILL; the retry re-read the
  // voided invoice, voided it again and Xero refused ("Invoice not of valid status for modification").
  it.effect("an app delete of a record already voided at the provider removes nothing more", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      const { mem, run } = yield* setup()
      yield* run([appChange(contact), appChange(invoice())])
      const ext = mem.records("invoice")[0]?.externalId as string
      mem.accountant.edit("invoice", ext, { status: "voided" })
      const r = yield* run([{ key: `m${++seq}`, entity: "invoice", recordId: "inv-1", source: "app", appChange: { record: invoice() as never, deleted: true, seq } }])
      expect([...r.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done", status: "synced" })])
      // Left as the accountant left it (a second remove would have deleted it here).
      expect(mem.get("invoice", ext)).toMatchObject({ deleted: false, record: expect.objectContaining({ status: "voided" }) })
      const links = yield* sql<{ provider_deleted: boolean }>`SELECT provider_deleted FROM links WHERE entity = 'invoice' AND record_id = 'inv-1'`
      expect(links).toEqual([{ provider_deleted: true }])
    }).pipe(Effect.provide(layer())))

  // Found by the chaos harness: an app change arriving while a create's answer was lost gave the create another
  // idempotency key (derived from the record's content), and the provider created the record a second time.
  const lostAnswer = (mem: ReturnType<typeof makeMemoryProvider>, entity = "contact") =>
    Effect.gen(function*() {
      const real = yield* SyncStore
      const connection = Option.getOrThrow(yield* real.connection("acme-mem"))
      const client = yield* mem.provider.client({ connectionId: connection.id, accountId: "acct", baseUrl: "", tokens: undefined as unknown as Provider.TokenSource })
      // Every commit that would link a new record fails (the commit step's own retries too): the answer is lost.
      let losing = true
      const flaky = SyncStore.of({
        ...real,
        commit: (c) => (losing && c.links.some((l) => l.entity === entity)
          ? Effect.fail(new StoreError({ operation: "commit", reason: "connection reset" }))
          : real.commit(c))
      })
      const run = (items: ReadonlyArray<WorkItem>) => runBatch(connection, { provider: mem.provider, client }, items).pipe(Effect.provideService(SyncStore, flaky))
      return { run, connection, store: real, recover: () => (losing = false) }
    })

  it.live("creates a record once when the app changes it while its create's answer is lost, then updates it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* seedTenant(parseTenant(tenantYaml("review")))
      const mem = makeMemoryProvider({ idempotency: "request" })
      const { run, recover } = yield* lostAnswer(mem)
      const before = Number((yield* sql<{ seq: string | null }>`SELECT max(seq) AS seq FROM audit_log`)[0]?.seq ?? 0)
      const first = yield* run([appChange(contact)])
      expect([...first.outcomes.values()].every((o) => o._tag === "Retry")).toBe(true)
      expect(mem.records("contact")).toHaveLength(1)
      recover()
      // The app's next version has another idempotency key; the provider must not get a second create.
      const second = yield* run([appChange({ ...contact, email: "ada@example.com" })])
      expect([...second.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done", status: "synced" })])
      expect(mem.records("contact")).toHaveLength(1)
      expect(mem.records("contact")[0]).toMatchObject({ name: "Ada Lovelace", email: "ada@example.com" })
      const links = yield* sql<{ external_id: string }>`SELECT external_id FROM links WHERE entity = 'contact' AND record_id = 'cust-1'`
      expect(links.map((l) => l.external_id)).toEqual([mem.records("contact")[0]?.externalId])
      const open = yield* sql<{ n: string }>`SELECT count(*) AS n FROM conflicts WHERE status = 'open'`
      expect(Number(open[0]?.n)).toBe(0)
      const unanswered = yield* sql<{ n: string }>`SELECT count(*) AS n FROM idempotency WHERE operation = 'create' AND answered_at IS NULL`
      expect(Number(unanswered[0]?.n)).toBe(0)
      const audit = yield* sql<{ action: string }>`SELECT action FROM audit_log WHERE seq > ${before} AND record_id = 'cust-1' AND action LIKE 'provider_%' ORDER BY seq`
      expect(audit.map((a) => a.action)).toEqual(["provider_create", "provider_update"])
      expect((yield* Audit.verify("acme")).ok).toBe(true)
    }).pipe(Effect.provide(layer())))

  it.live("removes the record an unanswered create made when the app deletes it meanwhile", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* seedTenant(parseTenant(tenantYaml("review")))
      const mem = makeMemoryProvider({ idempotency: "request" })
      const { run, recover } = yield* lostAnswer(mem)
      yield* run([appChange(contact)])
      expect(mem.records("contact")).toHaveLength(1)
      recover()
      // The app's record exists (a delete is accepted only for a stored record), marked deleted.
      const r = yield* run([{ key: `m${++seq}`, entity: "contact", recordId: "cust-1", source: "app", appChange: { record: contact as never, deleted: true, seq } }])
      expect([...r.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done" })])
      // Deleted at the provider (the memory provider lists only live records), and linked as deleted.
      expect(mem.records("contact")).toHaveLength(0)
      const links = yield* sql<{ provider_deleted: boolean }>`SELECT provider_deleted FROM links WHERE entity = 'contact' AND record_id = 'cust-1'`
      expect(links).toEqual([{ provider_deleted: true }])
    }).pipe(Effect.provide(layer())))

  it.live("never creates twice when a lost create went out beside an update", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* seedTenant(parseTenant(tenantYaml("review")))
      const mem = makeMemoryProvider({ idempotency: "request" })
      const { run, recover } = yield* lostAnswer(mem)
      recover()
      yield* run([appChange({ ...contact, id: "c-0", name: "Customer 0" })])
      expect(mem.records("contact")).toHaveLength(1)
      const { run: lossy, recover: recover2 } = yield* lostAnswer(mem)
      // One batch: an update of c-0 and a create of c-1; the create's answer is lost.
      const batch = () => [appChange({ ...contact, id: "c-0", name: "Customer 0", email: "c0@example.com" }), appChange({ ...contact, id: "c-1", name: "Customer 1" })]
      yield* lossy(batch())
      expect(mem.records("contact")).toHaveLength(2)
      recover2()
      const r = yield* lossy(batch())
      expect([...r.outcomes.values()].every((o) => o._tag === "Done")).toBe(true)
      expect(mem.records("contact").map((c) => c.name).sort()).toEqual(["Customer 0", "Customer 1"])
    }).pipe(Effect.provide(layer())))

  it.live("a create the provider refused keeps no provider record waiting for it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`TRUNCATE tenants CASCADE`
      yield* seedTenant(parseTenant(tenantYaml("review")))
      const mem = makeMemoryProvider({
        idempotency: "request",
        refuse: (op) =>
          op._tag === "Create" && (op.record as { name?: string }).name === "Taken"
            ? new Errors.ProviderRejected({ provider: "memory", connectionId: "acme-mem", entity: op.entity, code: "6240", providerMessage: "Duplicate Name Exists" })
            : undefined
      })
      const { run, store, connection, recover } = yield* lostAnswer(mem)
      recover()
      const r = yield* run([appChange({ ...contact, name: "Taken" })])
      expect([...r.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Dead" })])
      expect(yield* store.unansweredCreates(connection.id, "contact", new Date(Date.now() - 60_000))).toBe(0)
      // An accountant's contact is pulled at once, not held back as if it might be our create.
      const ext = mem.accountant.create("contact", { name: "Someone else", roles: ["customer"], status: "active" })
      const pulled = yield* run([{ key: `p${++seq}`, entity: "contact", externalId: ext, source: "provider" }])
      expect([...pulled.outcomes.values()]).toEqual([expect.objectContaining({ _tag: "Done", status: "synced" })])
    }).pipe(Effect.provide(layer())))
})
