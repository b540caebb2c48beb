/**
 * The providers this deployment speaks, and each one's OAuth app.
 *
 * Providers come from `@concord/providers` Registry; tests and the demo can
 * add more. OAuth apps come from the environment —
 * `CONCORD_<PROVIDER>_CLIENT_ID`, `_CLIENT_SECRET`, `_WEBHOOK_SECRET`, and
 * optionally `_AUTHORIZE_URL`, `_TOKEN_URL`, `_CONNECTIONS_URL`, `_API_URL`
 * (a sandbox) — or are registered at run time (the demo's sandboxes).
 */
import { Registry } from "@concord/providers"
import type { Provider } from "@concord/providers"
import { Context, Effect, Layer, Redacted } from "effect"
import { Settings } from "./Settings.ts"

export interface ProviderApp {
  readonly app: Provider.OAuthApp
  /** Secret that signs this provider's webhooks (QuickBooks verifier token, Xero webhook key). */
  readonly webhookSecret?: Redacted.Redacted<string>
  /** API base URL for new connections (a sandbox); default the provider's. */
  readonly apiUrl?: string
  /** No client-side pacing (a sandbox with limits off). */
  readonly unlimited?: boolean
}

export interface ProvidersShape {
  readonly get: (id: string) => Provider.Provider | undefined
  readonly all: () => ReadonlyArray<Provider.Provider>
  readonly register: (provider: Provider.Provider) => Effect.Effect<void>
  readonly app: (id: string) => ProviderApp | undefined
  readonly setApp: (id: string, app: ProviderApp) => Effect.Effect<void>
}

export class Providers extends Context.Service<Providers, ProvidersShape>()("concord/server/Providers") {}

const fromEnv = (providerId: string, publicUrl: string): ProviderApp | undefined => {
  const p = providerId.toUpperCase()
  const id = process.env[`CONCORD_${p}_CLIENT_ID`]
  const secret = process.env[`CONCORD_${p}_CLIENT_SECRET`]
  if (id === undefined || secret === undefined) return undefined
  const endpoints = {
    ...(process.env[`CONCORD_${p}_AUTHORIZE_URL`] === undefined ? {} : { authorizeUrl: process.env[`CONCORD_${p}_AUTHORIZE_URL`] as string }),
    ...(process.env[`CONCORD_${p}_TOKEN_URL`] === undefined ? {} : { tokenUrl: process.env[`CONCORD_${p}_TOKEN_URL`] as string }),
    ...(process.env[`CONCORD_${p}_CONNECTIONS_URL`] === undefined ? {} : { connectionsUrl: process.env[`CONCORD_${p}_CONNECTIONS_URL`] as string })
  }
  const webhook = process.env[`CONCORD_${p}_WEBHOOK_SECRET`]
  const api = process.env[`CONCORD_${p}_API_URL`]
  return {
    app: { clientId: id, clientSecret: Redacted.make(secret), redirectUri: `${publicUrl}/v1/oauth/${providerId}/callback`, endpoints },
    ...(webhook === undefined ? {} : { webhookSecret: Redacted.make(webhook) }),
    ...(api === undefined ? {} : { apiUrl: api }),
    ...(process.env[`CONCORD_${p}_UNLIMITED`] === "1" ? { unlimited: true } : {})
  }
}

export const layer = Layer.effect(
  Providers,
  Effect.gen(function*() {
    const settings = yield* Settings
    const providers = new Map<string, Provider.Provider>(Registry.providers.map((p) => [p.id, p]))
    const apps = new Map<string, ProviderApp>()
    for (const p of providers.values()) {
      const app = fromEnv(p.id, settings.publicUrl)
      if (app !== undefined) apps.set(p.id, app)
    }
    return Providers.of({
      get: (id) => providers.get(id),
      all: () => [...providers.values()],
      register: (provider) =>
        Effect.sync(() => {
          providers.set(provider.id, provider)
          const app = fromEnv(provider.id, settings.publicUrl)
          if (app !== undefined && !apps.has(provider.id)) apps.set(provider.id, app)
        }),
      app: (id) => apps.get(id),
      setApp: (id, app) =>
        Effect.sync(() => {
          apps.set(id, app)
        })
    })
  })
)
