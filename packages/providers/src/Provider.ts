/**
 * The provider interface ("one trait"): everything the engine needs from an
 * accounting system, with no knowledge of which one is behind it.
 *
 * A provider is a folder `src/<provider>/` whose `Adapter.ts` exports one
 * `Provider` value; `Registry.ts` lists them. Adapters speak the provider's
 * wire format (schemas in `Wire.ts`), map it to and from canonical records
 * (`Mapping.ts`, pure), and own auth, rate limits, batching and webhook
 * parsing.
 *
 * Id spaces: records handed to and returned by a `ProviderClient` are in the
 * provider's id space — `record.id` is the provider's id and every
 * reference (`contactId`, `lines[].accountId`, …) holds the referenced
 * record's provider id. The engine translates app ids with `Refs.mapRefs`
 * before and after.
 */
import type { Canonical } from "@concord/core"
import type { Effect, Redacted, Scope, Stream } from "effect"
import type { AuthFailed, NeedsReauth, ProviderError, ProviderUnavailable } from "./Errors.ts"

export type EntityType = Canonical.EntityType
export type CanonicalRecord = Canonical.CanonicalRecord

// ---------------------------------------------------------------------------
// Capabilities

export interface EntityCapabilities {
  readonly read: boolean
  readonly create: boolean
  readonly update: boolean
  /** How the provider removes a record: hard delete, void, archive (inactive), or not at all. */
  readonly remove: "delete" | "void" | "archive" | "none"
  /** The provider sends webhooks for this entity. */
  readonly webhooks: boolean
  /** Changes can be listed since a cursor (QuickBooks CDC, Xero If-Modified-Since). */
  readonly changeFeed: boolean
  /** Most records one batch request can write. */
  readonly batchSize: number
  /** Writes accept an idempotency key. */
  readonly idempotency: boolean
  /**
   * Top-level canonical fields this provider stores for the entity. Merging,
   * hashing and drift detection compare only these, so app-only data never
   * looks like drift. Always includes `entity`, `schemaVersion` and `id`.
   */
  readonly fields: ReadonlyArray<string>
  /** The provider has custom fields for this entity. */
  readonly customFields: boolean
}

export interface RateLimitBudget {
  readonly requestsPerMinute: number
  readonly concurrent: number
  readonly requestsPerDay?: number
  /** Most operations in one batch request. */
  readonly batchSize: number
}

// ---------------------------------------------------------------------------
// Auth

export interface TokenSet {
  readonly accessToken: Redacted.Redacted<string>
  readonly refreshToken: Redacted.Redacted<string>
  /** Epoch milliseconds. */
  readonly accessTokenExpiresAt: number
  /** Epoch milliseconds, when the provider says. */
  readonly refreshTokenExpiresAt?: number
  readonly scope?: string
}

/** Where a provider's OAuth endpoints live (the real ones by default; a sandbox's in tests). */
export interface OAuthEndpoints {
  readonly authorizeUrl: string
  readonly tokenUrl: string
  readonly revokeUrl?: string
  /** Xero's `/connections` (tenant ids a token can access). */
  readonly connectionsUrl?: string
}

export interface OAuthApp {
  readonly clientId: string
  readonly clientSecret: Redacted.Redacted<string>
  readonly redirectUri: string
  /** Overrides of the provider's default endpoints. */
  readonly endpoints?: Partial<OAuthEndpoints>
}

/** The provider accounts (QuickBooks realm, Xero tenant) a grant gives access to. */
export interface GrantedAccount {
  readonly accountId: string
  readonly name?: string
}

export interface ProviderAuth {
  /** The URL to send a person to, to connect their account. */
  readonly authorizationUrl: (app: OAuthApp, state: string) => string
  /** Exchanges an authorization code for tokens, and lists the accounts it grants. */
  readonly exchangeCode: (
    app: OAuthApp,
    code: string,
    callbackParams: Readonly<Record<string, string>>
  ) => Effect.Effect<{ readonly tokens: TokenSet; readonly accounts: ReadonlyArray<GrantedAccount> }, AuthFailed>
  /**
   * Exchanges a refresh token for new tokens. `NeedsReauth` when the grant is
   * revoked or expired (`invalid_grant`); `AuthFailed` for anything else.
   */
  readonly refresh: (app: OAuthApp, refreshToken: Redacted.Redacted<string>) => Effect.Effect<TokenSet, NeedsReauth | AuthFailed>
}

/** Where a client gets its access token (the engine's vault: single-flight refresh, rotation persisted). */
export interface TokenSource {
  /** A currently valid access token (refreshed ahead of expiry). */
  readonly accessToken: Effect.Effect<Redacted.Redacted<string>, NeedsReauth | ProviderUnavailable>
  /** Called after a 401: the token in hand was refused, get a new one. */
  readonly invalidate: (refused: Redacted.Redacted<string>) => Effect.Effect<void>
}

// ---------------------------------------------------------------------------
// Records, changes and writes

/** A record as the provider has it. */
export interface ProviderRecord {
  readonly entity: EntityType
  readonly externalId: string
  /** Optimistic-concurrency token (QuickBooks SyncToken, Xero UpdatedDateUTC). */
  readonly version: string
  /** When the provider last changed it (RFC 3339). */
  readonly updatedAt: string
  /** The canonical record, in the provider's id space. */
  readonly record: CanonicalRecord
}

export type Change =
  | { readonly _tag: "Upserted"; readonly record: ProviderRecord }
  | { readonly _tag: "Deleted"; readonly entity: EntityType; readonly externalId: string; readonly deletedAt: string }

export interface ChangesPage {
  readonly changes: ReadonlyArray<Change>
  /** Pass back to get the changes after these. */
  readonly cursor: string
  /** More changes are waiting right now (call again without pausing). */
  readonly hasMore: boolean
  /**
   * The feed could not reach back to the cursor (QuickBooks' `/cdc` keeps 30 days): changes made
   * between `from` and `to` were not read and only a full-state reconciliation can find them.
   */
  readonly gap?: { readonly from: string; readonly to: string }
}

export type WriteOp =
  | {
    readonly _tag: "Create"
    readonly entity: EntityType
    /** In the provider's id space; `record.id` is ignored. */
    readonly record: CanonicalRecord
    readonly idempotencyKey: string
  }
  | {
    readonly _tag: "Update"
    readonly entity: EntityType
    readonly externalId: string
    /** The version the change was based on; a different current version is a `StaleVersion`. */
    readonly version: string
    readonly record: CanonicalRecord
    readonly idempotencyKey: string
  }
  | {
    /** Delete, void or archive, per `EntityCapabilities.remove`. */
    readonly _tag: "Remove"
    readonly entity: EntityType
    readonly externalId: string
    readonly version: string
    readonly idempotencyKey: string
  }

/** The outcome of one operation of a batch: one bad element never sinks the others. */
export type WriteResult =
  | { readonly _tag: "Written"; readonly record: ProviderRecord }
  | { readonly _tag: "Removed"; readonly entity: EntityType; readonly externalId: string }
  | { readonly _tag: "Failed"; readonly error: ProviderError }

export interface ListPage {
  readonly records: ReadonlyArray<ProviderRecord>
  readonly next: string | undefined
}

export interface ListOptions {
  /** Records per page (the adapter caps it at the provider's maximum). */
  readonly pageSize?: number
  /** Only records changed at or after this instant (RFC 3339). */
  readonly modifiedSince?: string
}

/** Background work (backfills, reconciliation) yields to live traffic. */
export type Priority = "live" | "background"

/** One connection's view of the provider. */
export interface ProviderClient {
  readonly provider: string
  readonly connectionId: string
  /** Every record of an entity, page by page (paced by the rate limiter). */
  readonly list: (entity: EntityType, options?: ListOptions) => Stream.Stream<ProviderRecord, ProviderError>
  /**
   * One page of `list`, resumable: `cursor` (opaque; undefined for the first
   * page) comes from the previous page's `next`; no `next` means the end.
   * Backfills checkpoint it, so a restarted import continues where it stopped.
   */
  readonly listPage: (entity: EntityType, options?: ListOptions & { readonly cursor?: string }) => Effect.Effect<ListPage, ProviderError>
  /**
   * How many records `list` would give (with the same `modifiedSince`), when
   * the provider can count without listing (QuickBooks `select count(*)`).
   * Absent where it cannot; backfills then show progress without a total.
   */
  readonly count?: (entity: EntityType, options?: ListOptions) => Effect.Effect<number, ProviderError>
  /** One record; `NotFound` when it does not exist or was deleted. */
  readonly read: (entity: EntityType, externalId: string) => Effect.Effect<ProviderRecord, ProviderError>
  /**
   * Changes since `cursor` (undefined: since `since`, or the feed's earliest).
   * Only for entities whose capabilities have `changeFeed`.
   */
  readonly changes: (
    entities: ReadonlyArray<EntityType>,
    cursor: string | undefined,
    since?: string
  ) => Effect.Effect<ChangesPage, ProviderError>
  /**
   * Writes operations, batched up to the provider's batch size and paced to
   * its rate limit. Results are in the order of `ops`. Transport failures of
   * a whole request fail the effect; per-record failures are `Failed` results.
   */
  readonly write: (ops: ReadonlyArray<WriteOp>) => Effect.Effect<ReadonlyArray<WriteResult>, ProviderError>
  /** Runs `effect` with this client's requests at the given priority. */
  readonly withPriority: <A, E, R>(priority: Priority, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export interface ConnectionContext {
  readonly connectionId: string
  /** The provider account: QuickBooks realm id, Xero tenant id. */
  readonly accountId: string
  /** The provider API's base URL (the real one, or a sandbox's). */
  readonly baseUrl: string
  readonly tokens: TokenSource
  /** Turn off client-side pacing (benchmarks against a sandbox with limits off). */
  readonly unlimited?: boolean
  /** Told of every API call's HTTP status (0: no answer) — metrics. */
  readonly onCall?: (status: number) => Effect.Effect<void>
}

// ---------------------------------------------------------------------------
// Webhooks

/** "Something changed": the engine re-reads the record (state-based sync). */
export interface ChangeNotice {
  /** The provider account the change happened in (realm id, Xero tenant id). */
  readonly accountId: string
  readonly entity: EntityType
  readonly externalId: string
  readonly operation: "create" | "update" | "delete" | "void" | "merge" | "archive"
  /** When the provider says it happened (RFC 3339). */
  readonly occurredAt: string
}

export type WebhookVerdict =
  /** Bad or missing signature: answer 401, publish nothing. */
  | { readonly _tag: "Invalid"; readonly reason: string }
  /** A verified handshake (Xero intent-to-receive): answer 200 with an empty body, publish nothing. */
  | { readonly _tag: "Handshake" }
  /** Verified notices. */
  | { readonly _tag: "Notices"; readonly notices: ReadonlyArray<ChangeNotice> }

export interface ProviderWebhooks {
  /** The header that carries the signature. */
  readonly signatureHeader: string
  /**
   * Verifies the signature over the raw body in constant time, then parses.
   * A payload that verifies but does not parse is `Invalid` with the reason.
   */
  readonly receive: (
    headers: Readonly<Record<string, string | undefined>>,
    rawBody: Uint8Array,
    secret: Redacted.Redacted<string>
  ) => WebhookVerdict
}

// ---------------------------------------------------------------------------

export interface Provider {
  /** "quickbooks", "xero", … */
  readonly id: string
  readonly displayName: string
  readonly entities: Readonly<Partial<Record<EntityType, EntityCapabilities>>>
  readonly rateLimit: RateLimitBudget
  readonly auth: ProviderAuth
  readonly webhooks?: ProviderWebhooks
  /** The production API base URL. */
  readonly defaultBaseUrl: string
  /** A client for one connection. Scoped: its limiter and pools close with the scope. */
  readonly client: (context: ConnectionContext) => Effect.Effect<ProviderClient, never, Scope.Scope>
}

/** The entity types a provider supports, in dependency order (accounts before invoices). */
export const supportedEntities = (provider: Provider): ReadonlyArray<EntityType> =>
  (Object.keys(provider.entities) as Array<EntityType>).filter((e) => provider.entities[e] !== undefined)
