/**
 * Fidelity: `node-quickbooks`, a widely used third-party QuickBooks Online
 * client, works against the sandbox unchanged — only its base URLs are
 * pointed at it (the library reads them from static properties).
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { QuickBooks as QuickBooksClass } from "node-quickbooks"
import { createRequire } from "node:module"
import { start } from "../../src/quickbooks/Sandbox.ts"

/** The library is CommonJS (`module.exports = QuickBooks`); its typings describe the class. */
const QuickBooksLib = createRequire(import.meta.url)("node-quickbooks") as typeof QuickBooksClass
type Lib = QuickBooksClass
const original = { base: QuickBooksLib.V3_ENDPOINT_BASE_URL, token: QuickBooksLib.TOKEN_URL }

/** Calls a node-quickbooks callback method as an Effect. */
const call = <A>(f: (cb: (err: unknown, data?: A) => void) => void) =>
  Effect.callback<A, unknown>((resume) => {
    f((err, data) => resume(err === null || err === undefined ? Effect.succeed(data as A) : Effect.fail(err)))
  })

const faultOf = (err: unknown): { code?: string; Message?: string; Detail?: string } | undefined => {
  const e = err as { Fault?: { Error?: Array<{ code?: string; Message?: string; Detail?: string }> }; response?: { data?: { Fault?: { Error?: Array<{ code?: string }> } } } }
  return e.Fault?.Error?.[0] ?? e.response?.data?.Fault?.Error?.[0]
}

describe("node-quickbooks against the sandbox", () => {
  afterEach(() => {
    QuickBooksLib.V3_ENDPOINT_BASE_URL = original.base
    QuickBooksLib.TOKEN_URL = original.token
  })

  it.live("creates, reads, queries, updates and batches invoices; stale updates get Fault 5010", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: true })
      const tokens = sb.issueTokens()
      QuickBooksLib.V3_ENDPOINT_BASE_URL = `${sb.baseUrl}/v3/company/`
      QuickBooksLib.TOKEN_URL = sb.endpoints.tokenUrl
      const qbo: Lib = new QuickBooksLib(sb.clientId, sb.clientSecret, tokens.access_token, false, sb.realmId, true, false, "75", "2.0", tokens.refresh_token)

      const created = yield* call<Record<string, any>>((cb) =>
        qbo.createInvoice({
          CustomerRef: { value: "1" },
          DocNumber: "NQ-1001",
          Line: [{ Amount: 150, DetailType: "SalesItemLineDetail", SalesItemLineDetail: { ItemRef: { value: "1" }, Qty: 3, UnitPrice: 50 } }]
        } as any, cb as any)
      )
      expect(created.Id).toBeDefined()
      expect(created.SyncToken).toBe("0")
      expect(created.TotalAmt).toBe(150)
      expect(created.Balance).toBe(150)

      const fetched = yield* call<Record<string, any>>((cb) => qbo.getInvoice(created.Id, cb as any))
      expect(fetched.DocNumber).toBe("NQ-1001")
      expect(fetched.CustomerRef).toEqual({ value: "1", name: "Sandbox Customer" })

      const found = yield* call<Record<string, any>>((cb) => qbo.findInvoices({ DocNumber: "NQ-1001" }, cb as any))
      expect(found.QueryResponse.Invoice.map((i: { Id: string }) => i.Id)).toEqual([created.Id])
      const counted = yield* call<Record<string, any>>((cb) => qbo.findAccounts({ count: true }, cb as any))
      expect(counted.QueryResponse.totalCount).toBe(14)

      const updated = yield* call<Record<string, any>>((cb) => qbo.updateInvoice({ Id: created.Id, SyncToken: "0", PrivateNote: "via node-quickbooks" } as any, cb as any))
      expect(updated.SyncToken).toBe("1")
      expect(updated.PrivateNote).toBe("via node-quickbooks")
      expect(updated.DocNumber).toBe("NQ-1001")

      const stale = yield* Effect.flip(call((cb) => qbo.updateInvoice({ Id: created.Id, SyncToken: "0", PrivateNote: "lost update" } as any, cb as any)))
      expect(faultOf(stale)?.code).toBe("5010")
      expect((yield* call<Record<string, any>>((cb) => qbo.getInvoice(created.Id, cb as any))).PrivateNote).toBe("via node-quickbooks")

      const batch = yield* call<Record<string, any>>((cb) =>
        qbo.batch([
          { bId: "a", operation: "create", Customer: { DisplayName: "Batch Customer" } },
          { bId: "b", operation: "create", JournalEntry: { Line: [{ Amount: 5, DetailType: "JournalEntryLineDetail", JournalEntryLineDetail: { PostingType: "Debit", AccountRef: { value: "77" } } }, { Amount: 5, DetailType: "JournalEntryLineDetail", JournalEntryLineDetail: { PostingType: "Credit", AccountRef: { value: "1" } } }] } }
        ] as any, cb)
      )
      expect(batch.BatchItemResponse[0].Customer.DisplayName).toBe("Batch Customer")
      expect(batch.BatchItemResponse[1].Fault.Error[0].code).toBe("2500")

      const cdc = yield* call<Record<string, any>>((cb) => qbo.changeDataCapture(["Invoice", "Customer"], new Date(Date.now() - 60_000).toISOString(), cb))
      const qr = cdc.CDCResponse[0].QueryResponse
      expect(qr[0].Invoice[0].Id).toBe(created.Id)
      expect(qr[1].Customer.map((c: { DisplayName: string }) => c.DisplayName)).toContain("Batch Customer")

      const refreshed = yield* call<Record<string, any>>((cb) => qbo.refreshAccessToken(cb as any))
      expect(refreshed.access_token).toBeDefined()
      expect(qbo.token).toBe(refreshed.access_token)
      expect(sb.oauth.stats.refreshes).toBe(1)
      expect(sb.count(sb.realmId, "Invoice")).toBe(1)
    }))
})
