/**
 * Fidelity: Xero's own Node SDK (xero-node), pointed at the sandbox with
 * nothing changed but its base path, creates, reads, pages and updates
 * invoices, and sees Xero's validation errors.
 *
 * Not covered: xero-node's own OAuth helpers (`initialize`, `apiCallback`,
 * `refreshToken`, `updateTenants`) use openid-client discovery of the fixed
 * issuer https://identity.xero.com and the fixed https://api.xero.com/connections
 * URL, which cannot be redirected to a local server; the adapter's OAuth
 * against the sandbox is tested in Auth.test.ts instead.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { XeroClient } from "xero-node"
import { start } from "../../src/xero/Sandbox.ts"

describe("xero-node against the sandbox", () => {
  it.live("creates a contact and invoices, reads, pages with If-Modified-Since, updates, and gets ValidationErrors", () =>
    Effect.gen(function*() {
      const sandbox = yield* start({ limits: true })
      const tenant = sandbox.tenants[0] as string
      const tokens = sandbox.issueTokens()
      const xero = new XeroClient({ clientId: sandbox.clientId, clientSecret: sandbox.clientSecret, redirectUris: ["http://127.0.0.1:9/cb"], scopes: ["offline_access", "accounting.transactions"] })
      xero.setTokenSet({ access_token: tokens.access_token, refresh_token: tokens.refresh_token, token_type: "Bearer", expires_in: tokens.expires_in })
      xero.accountingApi.basePath = sandbox.baseUrl
      const api = xero.accountingApi

      const result = yield* Effect.promise(async () => {
        const contacts = await api.createContacts(tenant, { contacts: [{ name: "SDK Customer", emailAddress: "sdk@example.com" }] }, false, "sdk-contact-1")
        const contactID = contacts.body.contacts?.[0]?.contactID as string
        const since = new Date()
        const created = await api.createInvoices(tenant, {
          invoices: Array.from({ length: 3 }, (_, i) => ({
            type: "ACCREC" as never,
            contact: { contactID },
            date: "2026-05-01",
            dueDate: "2026-05-31",
            reference: `SDK-${i}`,
            lineItems: [{ description: "Consulting", quantity: 2, unitAmount: 50, accountCode: "200", taxType: "OUTPUT" }],
            status: "AUTHORISED" as never
          }))
        }, false, undefined, "sdk-invoices-1")
        const invoices = created.body.invoices ?? []
        const first = invoices[0]
        const read = await api.getInvoice(tenant, first?.invoiceID as string)
        const page = await api.getInvoices(tenant, since, undefined, "UpdatedDateUTC ASC", undefined, undefined, undefined, undefined, 1, undefined, undefined, undefined, undefined, 2)
        const updated = await api.updateInvoice(tenant, first?.invoiceID as string, { invoices: [{ reference: "SDK-0 (updated)" }] })
        let validation: unknown
        try {
          await api.createInvoices(tenant, { invoices: [{ type: "ACCREC" as never, contact: { contactID }, lineItems: [{ description: "x", quantity: 1, unitAmount: 1, accountCode: "999" }] }] })
        } catch (e) {
          validation = e
        }
        const replay = await api.createContacts(tenant, { contacts: [{ name: "SDK Customer", emailAddress: "sdk@example.com" }] }, false, "sdk-contact-1")
        return { contactID, invoices, read: read.body.invoices?.[0], page: page.body, updated: updated.body.invoices?.[0], validation, replayed: replay.body.contacts?.[0]?.contactID }
      })
      expect(result.invoices.map((i) => [i.invoiceNumber, i.total, i.totalTax, String(i.status)])).toEqual([
        ["INV-0001", 110, 10, "AUTHORISED"], ["INV-0002", 110, 10, "AUTHORISED"], ["INV-0003", 110, 10, "AUTHORISED"]
      ])
      expect(result.read?.invoiceID).toBe(result.invoices[0]?.invoiceID)
      expect(result.read?.contact?.contactID).toBe(result.contactID)
      expect(result.read?.lineItems?.[0]?.lineAmount).toBe(100)
      expect(result.page.pagination).toMatchObject({ page: 1, pageSize: 2, pageCount: 2, itemCount: 3 })
      expect(result.page.invoices?.length).toBe(2)
      expect(result.updated?.reference).toBe("SDK-0 (updated)")
      const err = JSON.parse(String(result.validation)) as { response: { statusCode: number; body: { Type: string; Elements: Array<{ ValidationErrors: Array<{ Message: string }> }> } } }
      expect(err.response.statusCode).toBe(400)
      expect(err.response.body.Type).toBe("ValidationException")
      expect(err.response.body.Elements[0]?.ValidationErrors[0]?.Message).toBe("Account code '999' is not a valid code for this document.")
      expect(result.replayed).toBe(result.contactID)
      expect(sandbox.records(tenant, "contact").length).toBe(1)
    }))
})
