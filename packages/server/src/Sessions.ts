/**
 * Opens provider sessions for connections: the provider's adapter, a client
 * bound to the connection's account, and a token source backed by the vault
 * (refresh ahead of expiry, single-flight per connection across nodes,
 * rotation persisted before use, `invalid_grant` → `needs_reauth`).
 *
 * One session per connection per process, shared by everything that talks to
 * the provider for it — the connection's sync actor, the poller, a drift run,
 * a backfill. Sharing is what makes the provider's budget hold: a client owns
 * the rate limiter (QuickBooks 500/min and 10 in flight, Xero 60/min, 5 in
 * flight and 5,000 a day), so separate clients would each spend the whole
 * budget, and background work could not yield to live traffic it cannot see.
 * It also keeps the access token in hand between polls instead of reading and
 * decrypting the credentials for each one.
 *
 * A session is reference-counted by the scopes that opened it and closed once
 * none holds it and it has gone unused for `CONCORD_SESSION_IDLE_MS` (default
 * 20 minutes, longer than the default 15-minute polling ceiling, so a quiet
 * connection keeps its session from one poll to the next). A connection whose
 * account or API URL changed gets a new session; the old one closes when its
 * last holder lets go.
 */
import { type Provider, Tokens } from "@concord/providers"
import { ConnectionUnavailable, type ProviderSession, ProviderSessions, SyncStore } from "@concord/reconciler/Ports"
import { Clock, Effect, Exit, Layer, Scope } from "effect"
import { Metrics } from "./Observability.ts"
import { Providers } from "./Providers.ts"
import { Vault } from "./storage/Vault.ts"

interface Shared {
  /** What the session was opened for: a connection with another account or URL needs a new one. */
  readonly key: string
  readonly session: ProviderSession
  readonly scope: Scope.Closeable
  refs: number
  lastUsed: number
  /** Replaced by a session for a new key: closed when its last holder lets go. */
  retired: boolean
}

/** How long credentials read ahead by `prepare` may seed a session. */
const SEED_MS = 5_000

/** How long an unused session is kept (default 20 minutes). */
const idleMs = (): number => {
  const v = Number(process.env.CONCORD_SESSION_IDLE_MS ?? 20 * 60_000)
  return Number.isFinite(v) && v >= 0 ? v : 20 * 60_000
}

export const layer = Layer.effect(
  ProviderSessions,
  Effect.gen(function*() {
    const providers = yield* Providers
    const vault = yield* Vault
    const store = yield* SyncStore
    const metrics = yield* Metrics
    const layerScope = yield* Effect.scope
    const keepMs = idleMs()
    const shared = new Map<string, Shared>()
    /** Credentials read by `prepare` for sessions about to open, taken by the first `open` (kept a few seconds). */
    const seeds = new Map<string, { readonly tokens: Provider.TokenSet; readonly at: number }>()

    const close = (entry: Shared) => Scope.close(entry.scope, Exit.void)

    /** Closes sessions nobody holds that have been unused for longer than the idle time. */
    const sweep = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const [id, entry] of shared) {
        if (entry.refs === 0 && now - entry.lastUsed >= keepMs) {
          shared.delete(id)
          yield* close(entry)
        }
      }
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(Math.max(1_000, Math.min(60_000, keepMs))), sweep)))
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const all = [...shared.values()]
        shared.clear()
        return Effect.forEach(all, close, { discard: true })
      })
    )

    const release = (entry: Shared) =>
      Effect.gen(function*() {
        entry.refs--
        entry.lastUsed = yield* Clock.currentTimeMillis
        if (entry.retired && entry.refs === 0) yield* close(entry)
      })

    return ProviderSessions.of({
      prepare: (connectionIds) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          for (const [id, seed] of seeds) if (now - seed.at > SEED_MS) seeds.delete(id)
          const wanted = connectionIds.filter((id) => !shared.has(id) && !seeds.has(id))
          if (wanted.length === 0) return
          const loaded = yield* vault.loadMany(wanted)
          for (const [id, tokens] of loaded) seeds.set(id, { tokens, at: now })
        }).pipe(Effect.catchCause((c) => Effect.logDebug("sessions: could not read credentials ahead; each session reads its own", c))),
      open: (connection) =>
        Effect.gen(function*() {
          const unavailable = (status: string, reason: string) => new ConnectionUnavailable({ connectionId: connection.id, status, reason })
          const provider = providers.get(connection.provider)
          if (provider === undefined) return yield* unavailable("unsupported", `no provider '${connection.provider}' in this deployment`)
          const app = providers.app(connection.provider)
          if (app === undefined) {
            return yield* unavailable("unconfigured", `no OAuth app for ${connection.provider}: set CONCORD_${connection.provider.toUpperCase()}_CLIENT_ID and _CLIENT_SECRET`)
          }
          const accountId = connection.accountId
          if (accountId === undefined) return yield* unavailable("pending_auth", "not connected yet: open the connect URL")
          const baseUrl = connection.baseUrl ?? app.apiUrl ?? provider.defaultBaseUrl
          const key = JSON.stringify([connection.provider, accountId, baseUrl, app.unlimited === true])

          let entry = shared.get(connection.id)
          if (entry === undefined || entry.key !== key) {
            const scope = yield* Scope.fork(layerScope)
            const seed = seeds.get(connection.id)
            seeds.delete(connection.id)
            const tokens = yield* Tokens.makeTokenSource({
              ...(seed === undefined || (yield* Clock.currentTimeMillis) - seed.at > SEED_MS ? {} : { initial: seed.tokens }),
              provider,
              app: app.app,
              connectionId: connection.id,
              store: vault.tokenStore((id, reason) => store.setConnectionStatus(id, "needs_reauth", reason).pipe(Effect.ignore)),
              onRefresh: metrics.tokenRefreshed(connection.provider)
            })
            const client = yield* provider.client({
              connectionId: connection.id,
              accountId,
              baseUrl,
              tokens,
              onCall: (status) => metrics.providerCall(connection.provider, status),
              ...(app.unlimited === true ? { unlimited: true } : {})
            }).pipe(Scope.provide(scope))
            // Another fiber may have opened the same session while this one built its own: use theirs.
            // Otherwise what is there (if anything) was opened for another account or URL: retire it.
            const present = shared.get(connection.id)
            if (present !== undefined && present.key === key) {
              yield* Scope.close(scope, Exit.void)
              entry = present
            } else {
              if (present !== undefined) {
                present.retired = true
                if (present.refs === 0) yield* close(present)
              }
              entry = { key, session: { provider, client }, scope, refs: 0, lastUsed: yield* Clock.currentTimeMillis, retired: false }
              shared.set(connection.id, entry)
            }
          }
          const held = entry
          held.refs++
          held.lastUsed = yield* Clock.currentTimeMillis
          yield* Effect.addFinalizer(() => release(held))
          return held.session
        }).pipe(Effect.uninterruptible)
    })
  })
)
