/**
 * The sandbox as a QuickBooks Online look-alike, over plain HTTP: the query
 * language, SyncToken rules, Faults, auth and throttling answers, batch
 * limits, balances, and the control endpoints an out-of-process test uses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { start, type QuickBooksSandbox } from "../../src/quickbooks/Sandbox.ts"
import * as Q from "../../src/quickbooks/Query.ts"
import { serve } from "../../src/SandboxKit.ts"
import { hmacSha256Base64 } from "../../src/Signatures.ts"

const api = (sb: QuickBooksSandbox, token: string) => {
  const base = `${sb.baseUrl}/v3/company/${sb.realmId}`
  const req = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    Effect.promise(async () => {
      const res = await fetch(`${base}/${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json", ...headers },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
      })
      const text = await res.text()
      return { status: res.status, headers: res.headers, body: (text === "" ? {} : JSON.parse(text)) as Record<string, any> }
    })
  return {
    get: (path: string) => req("GET", path),
    post: (path: string, body: unknown, headers?: Record<string, string>) => req("POST", path, body, headers),
    query: (q: string) => req("GET", `query?query=${encodeURIComponent(q)}&minorversion=75`)
  }
}

const control = (sb: QuickBooksSandbox, path: string, body?: unknown) =>
  Effect.promise(async () => {
    const res = await fetch(`${sb.rootUrl}/__sandbox/${path}`, { method: body === undefined ? "GET" : "POST", ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    const text = await res.text()
    return { status: res.status, body: text.startsWith("{") ? (JSON.parse(text) as Record<string, any>) : text }
  })

describe("QuickBooks sandbox: query language", () => {
  it("parses the QuickBooks subset and refuses OR", () => {
    expect(Q.parse("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2026-01-01T00:00:00Z' AND CustomerRef = '5' ORDERBY TxnDate DESC STARTPOSITION 11 MAXRESULTS 10")).toEqual({
      select: "*",
      from: "Invoice",
      where: [
        { field: "MetaData.LastUpdatedTime", op: ">", values: ["2026-01-01T00:00:00Z"] },
        { field: "CustomerRef", op: "=", values: ["5"] }
      ],
      orderBy: [{ field: "TxnDate", descending: true }],
      startPosition: 11,
      maxResults: 10
    })
    expect(Q.parse("select count(*) from customer where Active in (true, false)").select).toBe("count")
    expect(Q.parse("select Id, DisplayName from Customer where DisplayName LIKE 'A%'").where[0]?.op).toBe("LIKE")
    expect(Q.parse(`select * from Customer where DisplayName = ${Q.quote("O'Brien \\ Co")}`).where[0]?.values).toEqual(["O'Brien \\ Co"])
    expect(() => Q.parse("select * from Invoice where Id = '1' OR Id = '2'")).toThrow(/QueryParserError/)
  })

  it.live("answers queries like QuickBooks: filters, ordering, paging, counts, inactive names hidden", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const q = api(sb, sb.issueTokens().access_token).query
      for (const name of ["Alpha", "Beta", "Gamma", "Delta"]) sb.insert(sb.realmId, "Customer", { DisplayName: name })
      sb.accountantDelete(sb.realmId, "Customer", "3") // Beta made inactive
      const active = yield* q("select * from Customer ORDERBY DisplayName")
      expect(active.body.QueryResponse.Customer.map((c: { DisplayName: string }) => c.DisplayName)).toEqual(["Alpha", "Delta", "Gamma", "Sandbox Customer"])
      expect(active.body.QueryResponse).toMatchObject({ startPosition: 1, maxResults: 4 })
      const all = yield* q("select count(*) from Customer where Active IN (true, false)")
      expect(all.body.QueryResponse).toEqual({ totalCount: 5 })
      const like = yield* q("select * from Customer where DisplayName LIKE '%a' ORDERBY DisplayName DESC")
      expect(like.body.QueryResponse.Customer.map((c: { DisplayName: string }) => c.DisplayName)).toEqual(["Gamma", "Delta", "Alpha"])
      const page = yield* q("select * from Account ORDERBY Id STARTPOSITION 13 MAXRESULTS 5")
      expect(page.body.QueryResponse.Account.map((a: { Id: string }) => a.Id)).toEqual(["13", "14"])
      const none = yield* q("select * from Invoice")
      expect(none.body.QueryResponse).toEqual({})
      const picked = yield* q("select Id, Name from Account where Id IN ('1', '2')")
      expect(picked.body.QueryResponse.Account.map((a: Record<string, unknown>) => [a.Id, a.Name, a.AccountType])).toEqual([["1", "Checking", undefined], ["2", "Savings", undefined]])
      const bad = yield* q("select * from Invoice where")
      expect(bad.status).toBe(400)
      expect(bad.body.Fault).toMatchObject({ type: "ValidationFault", Error: [{ code: "4000", Message: "Error parsing query" }] })
    }))
})

describe("QuickBooks sandbox: objects and rules", () => {
  it.live("assigns Ids, starts SyncToken at 0, bumps it, refuses stale ones with 5010 and keeps the newer data", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const http = api(sb, sb.issueTokens().access_token)
      const created = yield* http.post("vendor?minorversion=75", { DisplayName: "Acme Supplies", PrimaryEmailAddr: { Address: "ap@acme.test" } })
      expect(created.status).toBe(200)
      const v = created.body.Vendor
      expect(v).toMatchObject({ Id: "2", SyncToken: "0", Active: true, domain: "QBO" })
      expect(typeof created.body.time).toBe("string")
      const sparse = yield* http.post("vendor", { Id: v.Id, SyncToken: "0", sparse: true, CompanyName: "Acme Ltd" })
      expect(sparse.body.Vendor).toMatchObject({ SyncToken: "1", CompanyName: "Acme Ltd", PrimaryEmailAddr: { Address: "ap@acme.test" } })
      const full = yield* http.post("vendor?operation=update", { Id: v.Id, SyncToken: "1", DisplayName: "Acme Supplies" })
      expect(full.body.Vendor.SyncToken).toBe("2")
      expect(full.body.Vendor.CompanyName).toBeUndefined()
      const stale = yield* http.post("vendor", { Id: v.Id, SyncToken: "1", sparse: true, CompanyName: "Lost" })
      expect(stale.status).toBe(400)
      expect(stale.body.Fault.Error[0]).toMatchObject({ code: "5010", Message: "Stale Object Error" })
      expect((yield* http.get(`vendor/${v.Id}`)).body.Vendor.CompanyName).toBeUndefined()
      const dup = yield* http.post("customer", { DisplayName: "Acme Supplies" })
      expect(dup.body.Fault.Error[0]).toMatchObject({ code: "6240", element: "DisplayName" })
      const missing = yield* http.get("invoice/424242")
      expect(missing.status).toBe(400)
      expect(missing.body.Fault.Error[0].code).toBe("610")
    }))

  it.live("validates references, required fields and balance; computes totals; payments settle invoices", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const http = api(sb, sb.issueTokens().access_token)
      const noCustomer = yield* http.post("invoice", { Line: [{ Amount: 1, DetailType: "SalesItemLineDetail", SalesItemLineDetail: {} }] })
      expect(noCustomer.body.Fault.Error[0]).toMatchObject({ code: "2020", element: "CustomerRef" })
      const badItem = yield* http.post("invoice", { CustomerRef: { value: "1" }, Line: [{ Amount: 1, DetailType: "SalesItemLineDetail", SalesItemLineDetail: { ItemRef: { value: "77" } } }] })
      expect(badItem.body.Fault.Error[0]).toMatchObject({ code: "2500", element: "Line.SalesItemLineDetail.ItemRef", Detail: "Invalid Reference Id : Items element id 77 not found" })
      const unbalanced = yield* http.post("journalentry", { Line: [
        { Amount: 10, DetailType: "JournalEntryLineDetail", JournalEntryLineDetail: { PostingType: "Debit", AccountRef: { value: "1" } } },
        { Amount: 9, DetailType: "JournalEntryLineDetail", JournalEntryLineDetail: { PostingType: "Credit", AccountRef: { value: "2" } } }
      ] })
      expect(unbalanced.body.Fault.Error[0].code).toBe("6000")
      const inv = (yield* http.post("invoice", {
        CustomerRef: { value: "1" },
        TxnTaxDetail: { TotalTax: 8.25 },
        Line: [{ Amount: 100, DetailType: "SalesItemLineDetail", SalesItemLineDetail: { ItemRef: { value: "1" } } }]
      })).body.Invoice
      expect(inv).toMatchObject({ TotalAmt: 108.25, Balance: 108.25, GlobalTaxCalculation: "TaxExcluded", CurrencyRef: { value: "USD" } })
      expect(inv.Line[0]).toMatchObject({ Id: "1", LineNum: 1 })
      const pay = (yield* http.post("payment", { CustomerRef: { value: "1" }, TotalAmt: 108.25, Line: [{ Amount: 108.25, LinkedTxn: [{ TxnId: inv.Id, TxnType: "Invoice" }] }] })).body.Payment
      expect(pay.UnappliedAmt).toBe(0)
      const paid = (yield* http.get(`invoice/${inv.Id}`)).body.Invoice
      expect(paid).toMatchObject({ Balance: 0, SyncToken: "1" })
      const voided = yield* http.post("payment?operation=update&include=void", { Id: pay.Id, SyncToken: pay.SyncToken, sparse: true })
      expect(voided.body.Payment).toMatchObject({ TotalAmt: 0, PrivateNote: "Voided", SyncToken: "1" })
      expect((yield* http.get(`invoice/${inv.Id}`)).body.Invoice.Balance).toBe(108.25)
      const cannot = yield* http.post("customer?operation=delete", { Id: "1", SyncToken: "0" })
      expect(cannot.body.Fault.Error[0].code).toBe("500")
    }))

  it.live("batch: items run in order, each answers alone; more than the maximum is refused", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, batchMax: 3 })
      const http = api(sb, sb.issueTokens().access_token)
      const r = yield* http.post("batch", {
        BatchItemRequest: [
          { bId: "x1", operation: "create", Class: { Name: "East" } },
          { bId: "x2", operation: "create", Class: { Name: "East" } },
          { bId: "x3", Query: "select count(*) from Class" }
        ]
      })
      expect(r.body.BatchItemResponse.map((i: Record<string, unknown>) => i.bId)).toEqual(["x1", "x2", "x3"])
      expect(r.body.BatchItemResponse[0].Class.Name).toBe("East")
      expect(r.body.BatchItemResponse[1].Fault.Error[0].code).toBe("6240")
      expect(r.body.BatchItemResponse[2].QueryResponse.totalCount).toBe(1)
      const tooMany = yield* http.post("batch", { BatchItemRequest: [1, 2, 3, 4].map((i) => ({ bId: String(i), operation: "create", Class: { Name: `C${i}` } })) })
      expect(tooMany.status).toBe(400)
      expect(tooMany.body.Fault.Error[0].code).toBe("1040")
      expect(sb.count(sb.realmId, "Class")).toBe(1)
    }))
})

describe("QuickBooks sandbox: auth, limits and control", () => {
  it.live("401 AuthenticationFault without or with an expired token; 403 for another company", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, accounts: 2 })
      const token = sb.issueTokens([sb.accounts[0] as string]).access_token
      const none = yield* Effect.promise(() => fetch(`${sb.baseUrl}/v3/company/${sb.realmId}/account/1`))
      expect(none.status).toBe(401)
      expect(((yield* Effect.promise(() => none.json())) as any).Fault.type).toBe("AuthenticationFault")
      const other = yield* Effect.promise(() => fetch(`${sb.baseUrl}/v3/company/${sb.accounts[1]}/account/1`, { headers: { authorization: `Bearer ${token}` } }))
      expect(other.status).toBe(403)
      sb.oauth.expireAccessTokens()
      expect((yield* api(sb, token).get("account/1")).status).toBe(401)
    }))

  it.live("enforces 10 concurrent requests per realm with 429 ThrottleExceeded, and can be switched off", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: true })
      const http = api(sb, sb.issueTokens().access_token)
      yield* control(sb, "faults", { latencyMs: 100 })
      const answers = yield* Effect.forEach(Array.from({ length: 15 }), () => http.get("account/1"), { concurrency: "unbounded" })
      const throttled = answers.filter((a) => a.status === 429)
      expect(throttled.length).toBe(5)
      expect(throttled[0]?.body.Fault.Error[0]).toMatchObject({ code: "3001" })
      expect(throttled[0]?.headers.get("retry-after")).toBe("1")
      yield* control(sb, "limits", { enabled: false })
      const free = yield* Effect.forEach(Array.from({ length: 15 }), () => http.get("account/1"), { concurrency: "unbounded" })
      expect(free.every((a) => a.status === 200)).toBe(true)
    }))

  it.live("control endpoints drive faults, tokens, accountant edits and counts from outside the process", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const tokens = (yield* control(sb, "tokens", {})).body as { access_token: string }
      const http = api(sb, tokens.access_token)
      yield* control(sb, "faults", { errorRate: 1 })
      expect((yield* http.get("account/1")).status).toBe(500)
      yield* control(sb, "faults/reset", {})
      expect((yield* http.get("account/1")).status).toBe(200)
      yield* control(sb, "faults", { stormMs: 60_000 })
      expect((yield* http.get("account/1")).status).toBe(429)
      yield* control(sb, "faults/reset", {})
      const edited = yield* control(sb, "accountant/edit", { entity: "account", id: "1", patch: { Description: "reconciled" } })
      expect(edited.body).toMatchObject({ Id: "1", SyncToken: "1", Description: "reconciled" })
      yield* control(sb, "accountant/delete", { entity: "contact", id: "vendor:1" })
      expect((yield* http.get("vendor/1")).body.Vendor.Active).toBe(false)
      const counts = (yield* control(sb, "counts")).body as Record<string, number>
      expect(counts).toMatchObject({ Account: 14, Customer: 1, Vendor: 1 })
      const received: Array<{ body: string; signature: string | undefined }> = []
      const hook = yield* serve({ routes: [{ method: "POST", path: "/hook", handler: (req) => {
        received.push({ body: req.rawBody.toString("utf8"), signature: req.header("intuit-signature") })
        return { status: 200 }
      } }] })
      const configured = yield* control(sb, "webhooks", { url: `${hook.url}/hook`, format: "cloudevents" })
      expect(configured.body).toMatchObject({ url: `${hook.url}/hook`, format: "cloudevents" })
      yield* http.post("class", { Name: "North" })
      yield* control(sb, "webhooks/flush", {})
      expect(received.length).toBe(1)
      expect(JSON.parse(received[0]?.body ?? "[]")[0]).toMatchObject({ type: "qbo.class.created.v1", intuitaccountid: sb.realmId })
      expect(received[0]?.signature).toBe(hmacSha256Base64(sb.verifierToken, received[0]?.body ?? ""))
      yield* control(sb, "tokens/expire", {})
      expect((yield* http.get("account/1")).status).toBe(401)
      const described = (yield* control(sb, "describe")).body
      expect(described).toContain(sb.realmId)
      expect(described).toContain(sb.clientId)
      expect(sb.describe()).toContain(sb.verifierToken)
    }))

  it.live("authorize endpoint refuses a missing scope and an unknown client", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const url = new URL(sb.endpoints.authorizeUrl)
      url.searchParams.set("client_id", sb.clientId)
      url.searchParams.set("response_type", "code")
      url.searchParams.set("redirect_uri", "http://127.0.0.1:9/cb")
      url.searchParams.set("scope", "openid")
      url.searchParams.set("state", "s")
      const r = yield* Effect.promise(() => fetch(url, { redirect: "manual" }))
      expect(new URL(r.headers.get("location") ?? "").searchParams.get("error")).toBe("invalid_scope")
      url.searchParams.set("client_id", "nobody")
      expect((yield* Effect.promise(() => fetch(url, { redirect: "manual" }))).status).toBe(400)
    }))
})
