/**
 * The demo (`CONCORD_DEMO=1` / `npm run demo`): starts the QuickBooks and Xero
 * sandboxes in this process, points the engine at them (OAuth apps, API base
 * URLs, webhook secrets; the sandboxes deliver webhooks to this node), sets
 * up two demo tenants already connected, and prints curl commands that show
 * a POS sale becoming a journal entry in QuickBooks and an accountant's edit
 * coming back as a `concord.changes` event.
 */
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import * as XeroSandbox from "@concord/providers/xero/Sandbox"
import { Effect, Redacted } from "effect"
import { ApiKeys } from "./ApiKeys.ts"
import { Nats } from "./nats/Nats.ts"
import { Providers } from "./Providers.ts"
import { Settings } from "./Settings.ts"
import { Tenants } from "./Tenants.ts"

const qboTenant = `
version: 1
tenant: demo
name: Demo Coffee (QuickBooks)
connections:
  - id: demo-qbo
    provider: quickbooks
    entities:
      account: { direction: pull }
      contact: { direction: both, policy: review }
      item: { direction: both, policy: review }
      invoice: { direction: both, policy: review }
      journal_entry: { direction: push, policy: app_wins }
      sales_receipt: { direction: push, policy: app_wins }
glRules:
  - name: card-sales
    match: { type: [sale, refund], tender: card }
    accounts: { clearing: "1200", revenue: "4000", tax: "2200" }
  - name: processor
    match: { type: [fee, payout] }
    accounts: { clearing: "1200", fees: "6100", bank: "1000" }
`

const xeroTenant = `
version: 1
tenant: demo-xero
name: Demo Bakery (Xero)
connections:
  - id: demo-xero
    provider: xero
    entities:
      account: { direction: pull }
      contact: { direction: both, policy: review }
      invoice: { direction: both, policy: review }
      journal_entry: { direction: push, policy: app_wins }
glRules:
  - name: card-sales
    match: { type: [sale, refund], tender: card }
    accounts: { clearing: "090", revenue: "200", tax: "820" }
`

export const demo = Effect.gen(function*() {
  const settings = yield* Settings
  const providers = yield* Providers
  const tenants = yield* Tenants
  const keys = yield* ApiKeys
  const nats = yield* Nats
  const url = settings.publicUrl

  const qbo = yield* QuickBooksSandbox.start({ port: 0 })
  const xero = yield* XeroSandbox.start({ port: 0 })
  yield* providers.setApp("quickbooks", {
    app: { clientId: qbo.clientId, clientSecret: Redacted.make(qbo.clientSecret), redirectUri: `${url}/v1/oauth/quickbooks/callback`, endpoints: qbo.endpoints },
    webhookSecret: Redacted.make(qbo.webhookSecret),
    apiUrl: qbo.baseUrl
  })
  yield* providers.setApp("xero", {
    app: { clientId: xero.clientId, clientSecret: Redacted.make(xero.clientSecret), redirectUri: `${url}/v1/oauth/xero/callback`, endpoints: xero.endpoints },
    webhookSecret: Redacted.make(xero.webhookSecret),
    apiUrl: xero.baseUrl
  })
  qbo.setWebhookUrl(`${url}/webhooks/quickbooks`)
  xero.setWebhookUrl(`${url}/webhooks/xero`)

  const connect = (tenantId: string, yaml: string, connectionId: string, sandbox: { issueTokens: () => { access_token: string; refresh_token: string; expires_in: number }; accounts: ReadonlyArray<string>; baseUrl: string }) =>
    Effect.gen(function*() {
      yield* tenants.put(tenantId, { yaml }, "demo").pipe(Effect.orDie)
      const tokens = sandbox.issueTokens()
      yield* tenants.setCredentials(tenantId, connectionId, {
        accountId: sandbox.accounts[0] as string,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        expiresIn: tokens.expires_in,
        baseUrl: sandbox.baseUrl
      }, "demo").pipe(Effect.orDie)
      return (yield* keys.create(tenantId, "demo")).key
    })
  const demoKey = yield* connect("demo", qboTenant, "demo-qbo", qbo)
  const xeroKey = yield* connect("demo-xero", xeroTenant, "demo-xero", xero)
  const qboToken = qbo.issueTokens().access_token
  const realm = qbo.accounts[0] as string
  const eventsSubject = nats.names.subject("concord.changes.demo.>")

  const lines = [
    "",
    "Demo: QuickBooks and Xero sandboxes are running and connected.",
    `  QuickBooks sandbox  ${qbo.rootUrl}  (realm ${realm}; ${qbo.rootUrl}/__sandbox/describe)`,
    `  Xero sandbox        ${xero.rootUrl}  (tenant ${xero.accounts[0]})`,
    `  tenant demo         key ${demoKey}`,
    `  tenant demo-xero    key ${xeroKey}`,
    "",
    "1. A POS card sale becomes a journal entry in QuickBooks:",
    `   curl -s -X POST ${url}/v1/tenants/demo/transactions -H 'Authorization: Bearer ${demoKey}' -H 'Content-Type: application/json' \\`,
    `     -d '{"id":"sale-1","type":"sale","tender":"card","date":"2026-11-22","currency":"USD","lines":[{"description":"Latte","amount":450},{"description":"Bagel","amount":350}],"tax":66,"total":866}'`,
    `   curl -s ${url}/v1/operations/<operationId> -H 'Authorization: Bearer ${demoKey}'`,
    `   curl -s -G ${qbo.baseUrl}/v3/company/${realm}/query --data-urlencode 'query=select * from JournalEntry' -H 'Authorization: Bearer ${qboToken}'`,
    "",
    "2. An invoice from the app, then an accountant's edit in QuickBooks coming back:",
    `   curl -s -X PUT ${url}/v1/tenants/demo/records/contact/ada -H 'Authorization: Bearer ${demoKey}' -H 'Content-Type: application/json' \\`,
    `     -d '{"name":"Ada Lovelace","roles":["customer"],"status":"active"}'`,
    `   curl -s -X PUT ${url}/v1/tenants/demo/records/invoice/inv-1 -H 'Authorization: Bearer ${demoKey}' -H 'Content-Type: application/json' \\`,
    `     -d '{"contactId":"ada","date":"2026-11-22","currency":"USD","lineAmountTypes":"exclusive","lines":[{"description":"Consulting","amount":12000,"accountId":"4000"}],"status":"authorised","memo":"from the app"}'`,
    `   EXT=$(curl -s ${url}/v1/tenants/demo/records/invoice/inv-1 -H 'Authorization: Bearer ${demoKey}' | sed -E 's/.*"externalId":"([^"]+)".*/\\1/')`,
    `   curl -s -X POST ${qbo.rootUrl}/__sandbox/accountant/edit -H 'Content-Type: application/json' -d "{\\"entity\\":\\"invoice\\",\\"id\\":\\"$EXT\\",\\"patch\\":{\\"PrivateNote\\":\\"fixed by the accountant\\"}}"`,
    `   curl -s ${url}/v1/tenants/demo/records/invoice/inv-1 -H 'Authorization: Bearer ${demoKey}'   # memo is the accountant's now`,
    `   The change event is on NATS ${nats.url}, subject ${eventsSubject} (e.g. nats sub '${eventsSubject}' -s ${nats.url})`,
    ""
  ]
  yield* Effect.sync(() => console.log(lines.join("\n")))
})
