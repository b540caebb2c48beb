/**
 * An access-token source for one connection: refreshes ahead of expiry,
 * one refresh at a time per connection (single-flight), and persists a
 * rotated refresh token before anything uses it — so a crash right after a
 * refresh can never leave us holding only a refresh token the provider has
 * already retired. A save that fails (the database connection dropped while
 * the provider answered) keeps the new tokens in hand: the next attempt saves
 * them instead of refreshing with the retired token, which a provider without
 * a grace period (QuickBooks) answers with invalid_grant, i.e. a lost grant.
 */
import { Clock, Deferred, Effect, Redacted } from "effect"
import { type AuthFailed, NeedsReauth, ProviderUnavailable } from "./Errors.ts"
import type { OAuthApp, Provider, TokenSet, TokenSource } from "./Provider.ts"

/** Where tokens live (the engine's encrypted credential table; a Map in tests). */
export interface TokenStore {
  readonly load: (connectionId: string) => Effect.Effect<TokenSet | undefined>
  /** Durably stores `tokens`; returns only once they are safe. */
  readonly save: (connectionId: string, tokens: TokenSet) => Effect.Effect<void>
  /** Records that the grant is gone and a person must reconnect. */
  readonly markNeedsReauth: (connectionId: string, reason: string) => Effect.Effect<void>
  /** Runs `effect` holding the connection's refresh lock (across processes where the store is shared). */
  readonly withRefreshLock: <A, E>(connectionId: string, effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
}

export interface TokenSourceOptions {
  readonly provider: Pick<Provider, "id" | "auth">
  readonly app: OAuthApp
  readonly connectionId: string
  readonly store: TokenStore
  /** Refresh this long before the access token expires (default 5 minutes). */
  readonly refreshAheadMs?: number
  /** Called after each successful refresh (metrics). */
  readonly onRefresh?: Effect.Effect<void>
  /**
   * The stored tokens, read a moment ago (several connections' in one query): used instead of reading
   * them again while their access token is fresh. A refresh always reads the store under its lock.
   */
  readonly initial?: TokenSet
}

/**
 * Refreshed tokens not known to be stored, by provider and connection: the only copy of the live refresh
 * token. Process-wide, because a connection can have several token sources in one process (the sync
 * session, the poller, a backfill): none of them may refresh with the retired token while another holds
 * the new one.
 */
const unsavedTokens = new Map<string, TokenSet>()

/** How many times a refreshed token's save is retried (100 ms doubling to 2 s: about half a minute) before the caller hears of it. */
const SAVE_ATTEMPTS = 20

export const makeTokenSource = (options: TokenSourceOptions): Effect.Effect<TokenSource> =>
  Effect.sync(() => {
    const ahead = options.refreshAheadMs ?? 5 * 60_000
    let current: TokenSet | undefined = options.initial
    const unsavedKey = `${options.provider.id}|${options.connectionId}`
    let inFlight: Deferred.Deferred<TokenSet, NeedsReauth | ProviderUnavailable> | undefined

    const fresh = (t: TokenSet | undefined, now: number): t is TokenSet => t !== undefined && t.accessTokenExpiresAt - ahead > now

    const refreshNow: Effect.Effect<TokenSet, NeedsReauth | ProviderUnavailable> = options.store.withRefreshLock(
      options.connectionId,
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        // Our last refresh whose save failed: store it now; its refresh token is the only one that still works.
        const pending = unsavedTokens.get(unsavedKey)
        if (pending !== undefined) {
          yield* options.store.save(options.connectionId, pending)
          return pending
        }
        // Another process (or an earlier fiber) may have refreshed already.
        const stored = yield* options.store.load(options.connectionId)
        if (fresh(stored, now) && (current === undefined || Redacted.value(stored.accessToken) !== Redacted.value(current.accessToken))) {
          return stored
        }
        const base = stored ?? current
        if (base === undefined) {
          return yield* new NeedsReauth({ provider: options.provider.id, connectionId: options.connectionId, reason: "no credentials stored" })
        }
        const next = yield* options.provider.auth.refresh(options.app, base.refreshToken).pipe(
          Effect.catchTag("AuthFailed", (e: AuthFailed) =>
            Effect.fail(new ProviderUnavailable({ provider: options.provider.id, connectionId: options.connectionId, reason: `token refresh failed: ${e.reason}` })))
        )
        // Persist the rotated refresh token before anyone uses the new access token.
        unsavedTokens.set(unsavedKey, next)
        yield* Effect.logInfo(`${options.provider.id} connection ${options.connectionId}: access token refreshed; storing the rotated refresh token`)
        yield* options.store.save(options.connectionId, next)
        if (options.onRefresh !== undefined) yield* options.onRefresh
        return next
      })
    ).pipe(
      // Marked once the lock is released: inside it, a failing refresh rolls the mark back with the lock's
      // transaction (the connection stayed "active" and its work was dead-lettered instead of parked).
      Effect.tapError((e) => e._tag === "NeedsReauth" ? options.store.markNeedsReauth(options.connectionId, e.reason) : Effect.void)
    )

    /**
     * While a refreshed token is not stored, the process holds the only working refresh token: keep trying
     * to store it (the database may be briefly unreachable) rather than leave a crash a longer window to lose it.
     */
    const refreshAndStore: Effect.Effect<TokenSet, NeedsReauth | ProviderUnavailable> = Effect.gen(function*() {
      for (let attempt = 0; ; attempt++) {
        const exit = yield* Effect.exit(refreshNow)
        if (exit._tag === "Success" || !unsavedTokens.has(unsavedKey) || attempt >= SAVE_ATTEMPTS) return yield* exit
        yield* Effect.logWarning(`${options.provider.id} connection ${options.connectionId}: storing the refreshed token failed (attempt ${attempt + 1}); retrying, as this process holds the only working refresh token`, exit.cause)
        yield* Effect.sleep(Math.min(2000, 100 * 2 ** attempt))
      }
    })

    const singleFlight: Effect.Effect<TokenSet, NeedsReauth | ProviderUnavailable> = Effect.suspend(() => {
      if (inFlight !== undefined) return Deferred.await(inFlight)
      const d = Deferred.makeUnsafe<TokenSet, NeedsReauth | ProviderUnavailable>()
      inFlight = d
      return refreshAndStore.pipe(
        // Only now (the store's transaction committed) are the tokens safe.
        Effect.tap((t) =>
          Effect.sync(() => {
            current = t
            if (unsavedTokens.get(unsavedKey) === t) unsavedTokens.delete(unsavedKey)
          })
        ),
        Effect.onExit((exit) =>
          Effect.sync(() => {
            inFlight = undefined
            Deferred.doneUnsafe(d, exit)
          })
        )
      )
    })

    const accessToken = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (fresh(current, now)) return current.accessToken
      if (current === undefined) {
        const stored = yield* options.store.load(options.connectionId)
        if (fresh(stored, now)) {
          current = stored
          return stored.accessToken
        }
      }
      return (yield* singleFlight).accessToken
    })

    const invalidate = (refused: Redacted.Redacted<string>) =>
      Effect.sync(() => {
        if (current !== undefined && Redacted.value(current.accessToken) === Redacted.value(refused)) {
          current = { ...current, accessTokenExpiresAt: 0 }
        }
      })

    return { accessToken, invalidate } satisfies TokenSource
  })

/** A TokenStore in memory, for tests and the sandbox demo. */
export const memoryTokenStore = (initial?: Readonly<Record<string, TokenSet>>): TokenStore & {
  readonly needsReauth: Map<string, string>
  readonly saved: Array<{ connectionId: string; tokens: TokenSet }>
} => {
  const tokens = new Map<string, TokenSet>(Object.entries(initial ?? {}))
  const needsReauth = new Map<string, string>()
  const saved: Array<{ connectionId: string; tokens: TokenSet }> = []
  return {
    needsReauth,
    saved,
    load: (id) => Effect.sync(() => tokens.get(id)),
    save: (id, t) =>
      Effect.sync(() => {
        tokens.set(id, t)
        saved.push({ connectionId: id, tokens: t })
      }),
    markNeedsReauth: (id, reason) =>
      Effect.sync(() => {
        needsReauth.set(id, reason)
      }),
    withRefreshLock: (_id, effect) => effect
  }
}
