/**
 * Opens provider sessions for connections: the provider's adapter, a client
 * bound to the connection's account, and a token source backed by the vault
 * (refresh ahead of expiry, single-flight per connection across nodes,
 * rotation persisted before use, `invalid_grant` → `needs_reauth`).
 */
import { Tokens } from "@concord/providers"
import { ConnectionUnavailable, ProviderSessions, SyncStore } from "@concord/reconciler/Ports"
import { Effect, Layer } from "effect"
import { Metrics } from "./Observability.ts"
import { Providers } from "./Providers.ts"
import { Vault } from "./storage/Vault.ts"

export const layer = Layer.effect(
  ProviderSessions,
  Effect.gen(function*() {
    const providers = yield* Providers
    const vault = yield* Vault
    const store = yield* SyncStore
    const metrics = yield* Metrics
    return ProviderSessions.of({
      open: (connection) =>
        Effect.gen(function*() {
          const unavailable = (status: string, reason: string) => new ConnectionUnavailable({ connectionId: connection.id, status, reason })
          const provider = providers.get(connection.provider)
          if (provider === undefined) return yield* unavailable("unsupported", `no provider '${connection.provider}' in this deployment`)
          const app = providers.app(connection.provider)
          if (app === undefined) {
            return yield* unavailable("unconfigured", `no OAuth app for ${connection.provider}: set CONCORD_${connection.provider.toUpperCase()}_CLIENT_ID and _CLIENT_SECRET`)
          }
          if (connection.accountId === undefined) return yield* unavailable("pending_auth", "not connected yet: open the connect URL")
          const tokens = yield* Tokens.makeTokenSource({
            provider,
            app: app.app,
            connectionId: connection.id,
            store: vault.tokenStore((id, reason) =>
              store.setConnectionStatus(id, "needs_reauth", reason).pipe(Effect.ignore)
            ),
            onRefresh: metrics.tokenRefreshed(connection.provider)
          })
          const client = yield* provider.client({
            connectionId: connection.id,
            accountId: connection.accountId,
            baseUrl: connection.baseUrl ?? app.apiUrl ?? provider.defaultBaseUrl,
            tokens,
            onCall: (status) => metrics.providerCall(connection.provider, status),
            ...(app.unlimited === true ? { unlimited: true } : {})
          })
          return { provider, client }
        })
    })
  })
)
