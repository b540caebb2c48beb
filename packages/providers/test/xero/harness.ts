/**
 * Test harness: a Xero sandbox on a free port, a connection to its first
 * tenant (tokens in a memory store, refreshed through the real token
 * endpoint), and the adapter's client for it.
 */
import { Effect, Redacted, type Scope } from "effect"
import type { ConnectionContext, OAuthApp, ProviderClient, TokenSet } from "../../src/Provider.ts"
import { makeTokenSource, memoryTokenStore } from "../../src/Tokens.ts"
import { Xero } from "../../src/xero/Adapter.ts"
import { start, type XeroSandboxHandle, type XeroSandboxOptions } from "../../src/xero/Sandbox.ts"

export interface Harness {
  readonly sandbox: XeroSandboxHandle
  readonly tenant: string
  readonly app: OAuthApp
  readonly store: ReturnType<typeof memoryTokenStore>
  readonly client: ProviderClient
  readonly context: ConnectionContext
}

export const appOf = (sandbox: XeroSandboxHandle): OAuthApp => ({
  clientId: sandbox.clientId,
  clientSecret: Redacted.make(sandbox.clientSecret),
  redirectUri: "http://127.0.0.1:9/callback",
  endpoints: sandbox.endpoints
})

export const tokenSetOf = (issued: { access_token: string; refresh_token: string; expires_in: number }, now = Date.now()): TokenSet => ({
  accessToken: Redacted.make(issued.access_token),
  refreshToken: Redacted.make(issued.refresh_token),
  accessTokenExpiresAt: now + issued.expires_in * 1000
})

export const harness = (options: XeroSandboxOptions & { readonly unlimited?: boolean } = {}): Effect.Effect<Harness, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sandbox = yield* start({ limits: false, ...options })
    const tenant = sandbox.tenants[0] as string
    const app = appOf(sandbox)
    const connectionId = `conn-${tenant.slice(0, 8)}`
    const store = memoryTokenStore({ [connectionId]: tokenSetOf(sandbox.issueTokens([tenant])) })
    const tokens = yield* makeTokenSource({ provider: Xero, app, connectionId, store })
    const context: ConnectionContext = {
      connectionId,
      accountId: tenant,
      baseUrl: sandbox.baseUrl,
      tokens,
      ...(options.unlimited === undefined ? {} : { unlimited: options.unlimited })
    }
    const client = yield* Xero.client(context)
    return { sandbox, tenant, app, store, client, context }
  })

let counter = 0
/** A unique idempotency key per call site and run. */
export const key = (label: string) => `${label}-${process.pid}-${Date.now()}-${++counter}`
