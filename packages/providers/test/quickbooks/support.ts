/**
 * Test support: a sandbox, and an adapter client connected to it through
 * the real token source (memory store).
 */
import type { Canonical } from "@concord/core"
import { Effect, Redacted, type Scope } from "effect"
import type { OAuthApp, ProviderClient, TokenSet, WriteResult } from "../../src/Provider.ts"
import * as Tokens from "../../src/Tokens.ts"
import { makeClient, QuickBooks, type QuickBooksClientOptions } from "../../src/quickbooks/Adapter.ts"
import type { QuickBooksSandbox } from "../../src/quickbooks/Sandbox.ts"

export const appFor = (sb: QuickBooksSandbox): OAuthApp => ({
  clientId: sb.clientId,
  clientSecret: Redacted.make(sb.clientSecret),
  redirectUri: "http://127.0.0.1:9/callback",
  endpoints: sb.endpoints
})

export const tokenSetFrom = (t: { access_token: string; refresh_token: string; expires_in: number }, now = Date.now()): TokenSet => ({
  accessToken: Redacted.make(t.access_token),
  refreshToken: Redacted.make(t.refresh_token),
  accessTokenExpiresAt: now + t.expires_in * 1000
})

export interface Connected {
  readonly client: ProviderClient
  readonly store: ReturnType<typeof Tokens.memoryTokenStore>
  readonly app: OAuthApp
  readonly connectionId: string
}

export const connect = (
  sb: QuickBooksSandbox,
  options: QuickBooksClientOptions & { readonly unlimited?: boolean; readonly connectionId?: string; readonly tokens?: TokenSet; readonly store?: ReturnType<typeof Tokens.memoryTokenStore> } = {}
): Effect.Effect<Connected, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connectionId = options.connectionId ?? "conn-1"
    const store = options.store ?? Tokens.memoryTokenStore({ [connectionId]: options.tokens ?? tokenSetFrom(sb.issueTokens()) })
    const app = appFor(sb)
    const tokens = yield* Tokens.makeTokenSource({ provider: QuickBooks, app, connectionId, store })
    const client = yield* makeClient({
      connectionId,
      accountId: sb.realmId,
      baseUrl: sb.baseUrl,
      tokens,
      ...(options.unlimited === undefined ? {} : { unlimited: options.unlimited })
    }, { backoffMs: 20, ...options })
    return { client, store, app, connectionId }
  })

export const written = (r: WriteResult | undefined) => {
  if (r === undefined || r._tag !== "Written") throw new Error(`expected Written, got ${JSON.stringify(r, null, 1)}`)
  return r.record
}

let counter = 0
const currencies = [{ code: "CAD", name: "Canadian Dollar" }, { code: "AUD", name: "Australian Dollar" }, { code: "CHF", name: "Swiss Franc" }, { code: "SEK", name: "Swedish Krona" }]
export const unique = (prefix: string) => `${prefix} ${Date.now().toString(36)}-${++counter}`

type Rec = Canonical.CanonicalRecord

const doc = {
  schemaVersion: 1 as const,
  id: "new",
  date: "2026-01-15",
  currency: "USD"
}

/** A valid canonical record of each entity in the sandbox's id space (seeded ids). */
export const sample = (entity: Canonical.EntityType, deps: { invoiceId?: string; billId?: string; paymentId?: string } = {}): Rec => {
  const tag = unique("T")
  switch (entity) {
    case "account":
      return { entity, schemaVersion: 1, id: "new", code: tag.slice(-12), name: `Account ${tag}`, type: "expense", description: "made by a test", status: "active" }
    case "contact":
      return { entity, schemaVersion: 1, id: "new", name: `Customer ${tag}`, roles: ["customer"], email: "ap@example.com", companyName: "Example Ltd", billingAddress: { line1: "1 Main St", city: "Springfield", region: "CA", postalCode: "90001", country: "US" }, status: "active" }
    case "item":
      return { entity, schemaVersion: 1, id: "new", name: `Item ${tag}`, type: "service", salesPrice: "12.5", salesAccountId: "10", status: "active" }
    case "tax_rate":
      return { entity, schemaVersion: 1, id: "new", name: `Tax ${tag}`, rate: "5", status: "active" }
    case "currency":
      return { entity, schemaVersion: 1, id: "new", ...currencies[counter % currencies.length] as { code: string; name: string }, status: "active" }
    case "tracking_category":
      return { entity, schemaVersion: 1, id: "new", name: `Class ${tag}`, kind: "class", status: "active" }
    case "invoice":
    case "credit_note":
      return {
        ...doc,
        entity,
        contactId: "customer:1",
        number: tag.slice(-10),
        lineAmountTypes: "exclusive",
        lines: [
          { description: "Consulting", itemId: "1", quantity: "2", unitPrice: "50", amount: 10000, taxRateId: "2" },
          { description: "Widget", itemId: "2", quantity: "1", unitPrice: "25", amount: 2500 }
        ],
        totalTax: 825,
        memo: "from a test",
        customFields: { "Sales Rep": "Ann" },
        status: "authorised"
      }
    case "sales_receipt":
      return { ...doc, entity, contactId: "customer:1", depositAccountId: "4", lineAmountTypes: "no_tax", lines: [{ itemId: "1", quantity: "1", unitPrice: "40", amount: 4000 }], reference: "R-1", status: "active" }
    case "refund":
      return { ...doc, entity, contactId: "customer:1", refundFromAccountId: "1", lineAmountTypes: "no_tax", lines: [{ itemId: "1", quantity: "1", unitPrice: "40", amount: 4000 }], status: "active" }
    case "bill":
    case "vendor_credit":
      return {
        ...doc,
        entity,
        contactId: "vendor:1",
        lineAmountTypes: "exclusive",
        lines: [{ description: "Paper", accountId: "13", amount: 1999, taxRateId: "3", taxAmount: 100 }, { itemId: "2", quantity: "3", unitPrice: "10", amount: 3000 }],
        ...(entity === "bill" ? { dueDate: "2026-02-15" } : {}),
        memo: "from a test",
        status: "authorised"
      }
    case "expense":
      return { ...doc, entity, contactId: "vendor:1", paymentAccountId: "7", paymentType: "credit_card", lineAmountTypes: "no_tax", lines: [{ accountId: "14", amount: 1250, description: "fees" }], status: "active" }
    case "payment":
      return { entity, schemaVersion: 1, id: "new", contactId: "customer:1", date: "2026-01-20", currency: "USD", amount: 5000, accountId: "4", reference: "CHK-1", allocations: deps.invoiceId === undefined ? [] : [{ documentType: "invoice", documentId: deps.invoiceId, amount: 5000 }], status: "active" }
    case "bill_payment":
      return { entity, schemaVersion: 1, id: "new", contactId: "vendor:1", date: "2026-01-20", currency: "USD", amount: 1000, accountId: "1", paymentType: "check", allocations: deps.billId === undefined ? [] : [{ documentType: "bill", documentId: deps.billId, amount: 1000 }], status: "active" }
    case "journal_entry":
      return {
        entity,
        schemaVersion: 1,
        id: "new",
        date: "2026-01-31",
        currency: "USD",
        number: tag.slice(-10),
        lines: [
          { postingType: "debit", accountId: "13", amount: 12345, description: "accrual", contactId: "vendor:1" },
          { postingType: "credit", accountId: "6", amount: 12345 }
        ],
        memo: "month end",
        status: "posted"
      }
    case "deposit":
      return {
        entity,
        schemaVersion: 1,
        id: "new",
        date: "2026-01-31",
        currency: "USD",
        accountId: "1",
        lines: deps.paymentId === undefined
          ? [{ amount: 50000, accountId: "9", description: "owner contribution" }]
          : [{ amount: 5000, paymentId: deps.paymentId }, { amount: 1000, accountId: "10", contactId: "customer:1" }],
        memo: "payout",
        status: "active"
      }
    case "transfer":
      return { entity, schemaVersion: 1, id: "new", date: "2026-01-31", currency: "USD", fromAccountId: "1", toAccountId: "2", amount: 25000, memo: "sweep", status: "active" }
  }
}

/** A visible change to a record (what an update sends). */
export const changed = (r: Rec): Rec => {
  const x = r as unknown as Record<string, unknown>
  switch (r.entity) {
    case "account":
    case "item":
      return { ...x, description: `changed ${unique("d")}` } as unknown as Rec
    case "contact":
      return { ...x, phone: "+1 555 0100" } as unknown as Rec
    case "currency":
      return { ...x, name: `Renamed ${unique("c")}` } as unknown as Rec
    case "tracking_category":
      return { ...x, name: `Renamed ${unique("k")}` } as unknown as Rec
    case "tax_rate":
      return r
    default:
      return { ...x, memo: `changed ${unique("m")}` } as unknown as Rec
  }
}
