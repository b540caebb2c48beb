/**
 * Webhooks: the sandbox signs and delivers notifications to a receiver that
 * verifies them with the adapter; bad signatures, duplicates, replays and
 * both payload formats.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import type { ChangeNotice, WebhookVerdict } from "../../src/Provider.ts"
import { json, serve } from "../../src/SandboxKit.ts"
import { hmacSha256Base64 } from "../../src/Signatures.ts"
import { parseWebhook, QuickBooks } from "../../src/quickbooks/Adapter.ts"
import { start } from "../../src/quickbooks/Sandbox.ts"
import { connect, sample, written } from "./support.ts"

const receiver = (secret: string) =>
  Effect.gen(function*() {
    const deliveries: Array<{ body: string; signature: string | undefined; verdict: WebhookVerdict }> = []
    const served = yield* serve({
      routes: [{
        method: "POST",
        path: "/hooks/quickbooks",
        handler: (req) => {
          const verdict = QuickBooks.webhooks?.receive(req.headers as Record<string, string | undefined>, req.rawBody, Redacted.make(secret))
          if (verdict === undefined) throw new Error("no webhooks")
          deliveries.push({ body: req.rawBody.toString("utf8"), signature: req.header("intuit-signature"), verdict })
          return verdict._tag === "Invalid" ? json(401, { error: verdict.reason }) : { status: 200 }
        }
      }]
    })
    return { url: `${served.url}/hooks/quickbooks`, deliveries }
  })

const notices = (ds: ReadonlyArray<{ verdict: WebhookVerdict }>): Array<ChangeNotice> =>
  ds.flatMap((d) => (d.verdict._tag === "Notices" ? d.verdict.notices : []))

const receive = (body: string, signature: string | undefined, secret: string) =>
  QuickBooks.webhooks?.receive(signature === undefined ? {} : { "Intuit-Signature": signature }, Buffer.from(body), Redacted.make(secret))

describe("QuickBooks webhooks", () => {
  it.live("delivers signed notifications that verify and parse into change notices", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, webhookBatchWindowMs: 20 })
      const hook = yield* receiver(sb.verifierToken)
      sb.setWebhookUrl(hook.url)
      const { client } = yield* connect(sb)
      const inv = written((yield* client.write([{ _tag: "Create", entity: "invoice", record: sample("invoice"), idempotencyKey: "wh-inv" }]))[0])
      const je = written((yield* client.write([{ _tag: "Create", entity: "journal_entry", record: sample("journal_entry"), idempotencyKey: "wh-je" }]))[0])
      sb.accountantEdit(sb.realmId, "invoice", inv.externalId)
      sb.accountantDelete(sb.realmId, "journal_entry", je.externalId)
      sb.accountantEdit(sb.realmId, "contact", "customer:1", { CompanyName: "Renamed by the accountant" })
      yield* Effect.promise(() => sb.webhooksIdle())
      expect(hook.deliveries.length).toBeGreaterThan(0)
      expect(hook.deliveries.every((d) => d.verdict._tag === "Notices")).toBe(true)
      const got = notices(hook.deliveries).map((n) => `${n.accountId} ${n.entity} ${n.externalId} ${n.operation}`)
      expect(got).toEqual(expect.arrayContaining([
        `${sb.realmId} invoice ${inv.externalId} create`,
        `${sb.realmId} journal_entry ${je.externalId} create`,
        `${sb.realmId} invoice ${inv.externalId} update`,
        `${sb.realmId} journal_entry ${je.externalId} delete`,
        `${sb.realmId} contact customer:1 update`
      ]))
      expect(notices(hook.deliveries).every((n) => !Number.isNaN(Date.parse(n.occurredAt)))).toBe(true)
      // The accountant's edit bumped the SyncToken.
      expect((yield* client.read("invoice", inv.externalId)).version).toBe("1")
    }))

  it.live("parses the CloudEvents format too", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, webhookBatchWindowMs: 20, webhookFormat: "cloudevents" })
      const hook = yield* receiver(sb.verifierToken)
      sb.setWebhookUrl(hook.url)
      const { client } = yield* connect(sb)
      const pay = written((yield* client.write([{ _tag: "Create", entity: "payment", record: sample("payment"), idempotencyKey: "ce-pay" }]))[0])
      yield* client.write([{ _tag: "Remove", entity: "payment", externalId: pay.externalId, version: pay.version, idempotencyKey: "ce-void" }])
      yield* Effect.promise(() => sb.webhooksIdle())
      expect(Array.isArray(JSON.parse(hook.deliveries[0]?.body ?? "null"))).toBe(true)
      const got = notices(hook.deliveries).map((n) => `${n.entity} ${n.externalId} ${n.operation}`)
      expect(got).toEqual([`payment ${pay.externalId} create`, `payment ${pay.externalId} void`])
    }))

  it.live("refuses a bad, missing or stale-body signature", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const body = JSON.stringify({ eventNotifications: [{ realmId: sb.realmId, dataChangeEvent: { entities: [{ name: "Invoice", id: "1", operation: "Create", lastUpdated: "2026-01-01T10:00:00.000Z" }] } }] })
      const good = hmacSha256Base64(sb.verifierToken, body)
      expect(receive(body, good, sb.verifierToken)?._tag).toBe("Notices")
      expect(receive(body, hmacSha256Base64("another-verifier", body), sb.verifierToken)).toMatchObject({ _tag: "Invalid" })
      expect(receive(body, undefined, sb.verifierToken)).toMatchObject({ _tag: "Invalid", reason: "missing intuit-signature header" })
      expect(receive(body.replace("\"1\"", "\"2\""), good, sb.verifierToken)?._tag).toBe("Invalid")
      const notJson = "not json"
      expect(receive(notJson, hmacSha256Base64(sb.verifierToken, notJson), sb.verifierToken)).toMatchObject({ _tag: "Invalid" })
      // Over HTTP the receiver answers 401 and keeps nothing.
      const hook = yield* receiver(sb.verifierToken)
      const res = yield* Effect.promise(() => fetch(hook.url, { method: "POST", headers: { "intuit-signature": "AAAA" }, body }))
      expect(res.status).toBe(401)
      expect(notices(hook.deliveries)).toEqual([])
    }))

  it.live("duplicated and replayed deliveries verify to identical notices (so content-hash dedup drops them)", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, webhookBatchWindowMs: 20 })
      const hook = yield* receiver(sb.verifierToken)
      sb.setWebhookUrl(hook.url)
      sb.setWebhookFaults({ duplicateRate: 1 })
      const { client } = yield* connect(sb)
      yield* client.write([{ _tag: "Create", entity: "transfer", record: sample("transfer"), idempotencyKey: "dup" }])
      yield* Effect.promise(() => sb.webhooksIdle())
      expect(hook.deliveries.length).toBe(2)
      expect(hook.deliveries[0]?.body).toBe(hook.deliveries[1]?.body)
      expect(hook.deliveries[0]?.verdict).toEqual(hook.deliveries[1]?.verdict)
      // A replay of a captured delivery is byte-identical, so it verifies to the same notices again.
      const captured = hook.deliveries[0]
      const replay = yield* Effect.promise(() => fetch(hook.url, { method: "POST", headers: { "intuit-signature": captured?.signature ?? "" }, body: captured?.body ?? "" }))
      expect(replay.status).toBe(200)
      expect(hook.deliveries[2]?.verdict).toEqual(captured?.verdict)
    }))

  it.live("dropped and reordered deliveries: what arrives still verifies, order is not relied on", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, webhookBatchWindowMs: 20, seed: 3 })
      const hook = yield* receiver(sb.verifierToken)
      sb.setWebhookUrl(hook.url)
      sb.setWebhookFaults({ dropRate: 1 })
      const { client } = yield* connect(sb)
      yield* client.write([{ _tag: "Create", entity: "transfer", record: sample("transfer"), idempotencyKey: "drop" }])
      yield* Effect.promise(() => sb.webhooksIdle())
      expect(hook.deliveries.length).toBe(0)
      sb.setWebhookFaults({ dropRate: 0, reorder: true })
      const created = yield* client.write(Array.from({ length: 5 }, (_, i) => ({ _tag: "Create" as const, entity: "transfer" as const, record: sample("transfer"), idempotencyKey: `re-${i}` })))
      yield* Effect.promise(() => sb.webhooksIdle())
      const ids = notices(hook.deliveries).map((n) => n.externalId)
      expect([...ids].sort()).toEqual(created.map((r) => written(r).externalId).sort())
    }))
})

describe("QuickBooks webhook payloads", () => {
  it("parses Intuit's legacy format: offsets without a colon, merges, and entities or operations with no canonical form skipped", () => {
    const body = JSON.stringify({
      eventNotifications: [{
        realmId: "310687",
        dataChangeEvent: {
          entities: [
            { name: "Customer", id: "58", operation: "Merge", lastUpdated: "2015-10-05T14:42:19-0700", deletedId: "57" },
            { name: "Invoice", id: "130", operation: "Emailed", lastUpdated: "2015-10-05T14:42:19-0700" },
            { name: "Estimate", id: "9", operation: "Create", lastUpdated: "2015-10-05T14:42:19-0700" },
            { name: "Purchase", id: "77", operation: "Delete", lastUpdated: "2015-10-05T21:42:19.000Z" }
          ]
        }
      }]
    })
    expect(parseWebhook(Buffer.from(body))).toEqual({
      ok: true,
      notices: [
        { accountId: "310687", entity: "contact", externalId: "customer:58", operation: "merge", occurredAt: "2015-10-05T21:42:19.000Z" },
        { accountId: "310687", entity: "contact", externalId: "customer:57", operation: "delete", occurredAt: "2015-10-05T21:42:19.000Z" },
        { accountId: "310687", entity: "expense", externalId: "77", operation: "delete", occurredAt: "2015-10-05T21:42:19.000Z" }
      ]
    })
  })

  it("parses the CloudEvents array and names what is wrong with a malformed one", () => {
    const events = [{ specversion: "1.0", id: "e1", source: "intuit.x", type: "qbo.department.updated.v1", datacontenttype: "application/json", time: "2026-05-31T21:31:25.179Z", intuitentityid: "3", intuitaccountid: "310687", data: {} }]
    expect(parseWebhook(Buffer.from(JSON.stringify(events)))).toEqual({
      ok: true,
      notices: [{ accountId: "310687", entity: "tracking_category", externalId: "department:3", operation: "update", occurredAt: "2026-05-31T21:31:25.179Z" }]
    })
    const broken = parseWebhook(Buffer.from(JSON.stringify([{ ...events[0], intuitaccountid: undefined }])))
    expect(broken.ok).toBe(false)
    expect(broken.ok === false && broken.reason).toContain("intuitaccountid")
  })
})
