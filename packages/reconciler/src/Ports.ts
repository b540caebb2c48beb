/**
 * What the reconciler needs from the outside world, as services. The server
 * provides Postgres-backed implementations (ports and adapters): the
 * reconciler itself never speaks SQL or NATS.
 */
import type { Canonical, Config } from "@concord/core"
import type { Provider } from "@concord/providers"
import { Context, Effect, type Option, Schema, type Scope } from "effect"

const Effect_void = Effect.void

export type EntityType = Canonical.EntityType

export type ConnectionStatus = "pending_auth" | "active" | "paused" | "needs_reauth"

export interface ConnectionInfo {
  readonly id: string
  readonly tenantId: string
  readonly provider: string
  /** QuickBooks realm id, Xero tenant id (set by the OAuth callback). */
  readonly accountId: string | undefined
  /** API base URL override (a sandbox); default the provider's. */
  readonly baseUrl: string | undefined
  readonly status: ConnectionStatus
  readonly config: Config.ConnectionConfig
  readonly tenant: Config.TenantConfig
}

/** The app's current state of a record. */
export interface AppRecord {
  readonly entity: EntityType
  readonly recordId: string
  readonly data: Canonical.CanonicalRecord
  readonly hash: string
  readonly deleted: boolean
  /** Stream sequence of the app change applied last (orders app changes). */
  readonly appSeq: number
  /** Who wrote the current state: "app" or a provider id. */
  readonly origin: string
}

export interface Link {
  readonly entity: EntityType
  readonly recordId: string
  readonly externalId: string
  readonly version: string
  readonly providerHash: string | null
  readonly providerDeleted: boolean
  /** When the provider last changed the record, as far as we know (RFC 3339). */
  readonly providerUpdatedAt: string | null
}

/** The last state both sides agreed on: the comparable projection, in the app's id space. */
export interface Base {
  readonly entity: EntityType
  readonly recordId: string
  readonly data: Record<string, unknown>
  readonly hash: string
}

export interface OpenConflict {
  readonly id: string
  readonly entity: EntityType
  readonly recordId: string
  readonly path: string
}

export interface AuditEntry {
  readonly connectionId?: string
  readonly entity?: string
  readonly recordId?: string
  /** app_change, provider_create, provider_update, provider_remove, pull, pull_delete, conflict_opened, conflict_resolved, sync_failed, skipped, … */
  readonly action: string
  /** "app", a provider id, "operator:<key id>", "system". */
  readonly actor: string
  readonly correlationId?: string
  /** The pipeline step that did it. */
  readonly step?: string
  readonly detail: Record<string, unknown>
}

export interface ConflictUpsert {
  readonly entity: EntityType
  readonly recordId: string
  readonly path: string
  readonly segments: ReadonlyArray<unknown>
  readonly base: unknown
  readonly app: unknown
  readonly provider: unknown
}

export type ItemStatus = "synced" | "conflict" | "error" | "skipped"

/** Everything one pipeline run commits, in one transaction. */
export interface Commit {
  readonly tenantId: string
  readonly connectionId: string
  readonly records: ReadonlyArray<{
    readonly entity: EntityType
    readonly recordId: string
    readonly data: unknown
    readonly hash: string
    readonly deleted: boolean
    /** Set for app changes: only applied when newer than the stored sequence. */
    readonly appSeq?: number
    readonly origin: string
  }>
  readonly links: ReadonlyArray<Link>
  readonly bases: ReadonlyArray<Base>
  readonly syncStates: ReadonlyArray<{ readonly entity: EntityType; readonly recordId: string; readonly status: ItemStatus; readonly error?: unknown }>
  /** Conflicts to open (or refresh, when one is open on the same path). */
  readonly conflicts: ReadonlyArray<ConflictUpsert>
  /** Records whose open conflicts are re-evaluated: conflicts on other paths are superseded. */
  readonly conflictScopes: ReadonlyArray<{ readonly entity: EntityType; readonly recordId: string; readonly openPaths: ReadonlyArray<string> }>
  readonly audit: ReadonlyArray<AuditEntry>
  /** Outbox rows: subject (without deployment prefix) and payload. */
  readonly events: ReadonlyArray<{ readonly subject: string; readonly payload: unknown }>
  /** Answered provider writes; a create answered without `externalId` was refused (it created nothing). */
  readonly idempotency: ReadonlyArray<{
    readonly key: string
    readonly entity: EntityType
    readonly recordId: string
    readonly operation: string
    readonly externalId?: string
    readonly version?: string
  }>
  readonly operations: ReadonlyArray<{
    readonly operationId: string
    readonly entity: EntityType
    readonly recordId: string
    readonly status: "succeeded" | "failed" | "conflict"
    readonly detail?: unknown
  }>
  /** Records to sync once the connection is active again. */
  readonly parked?: ReadonlyArray<ParkedItem>
  /** Conflicts a person decided. */
  readonly resolved?: ReadonlyArray<{ readonly id: string; readonly resolution: "app" | "provider" | "merged"; readonly value?: unknown; readonly by: string }>
  /** Links to forget (a record the provider deleted is created afresh). */
  readonly unlink?: ReadonlyArray<{ readonly entity: EntityType; readonly recordId: string }>
  /** A backfill page: its cursor and counters commit with the records it imported. */
  readonly backfill?: BackfillCheckpoint
}

/**
 * One committed backfill page. The store applies it only while the backfill
 * is running and has committed exactly `page` pages; otherwise the whole
 * commit fails (a replayed or cancelled page writes nothing).
 */
export interface BackfillCheckpoint {
  readonly backfillId: string
  /** Pages committed before this one. */
  readonly page: number
  /** Where the next page starts; undefined when this was the last page. */
  readonly cursor: string | undefined
  /** Records of this page, and what became of them. */
  readonly done: number
  readonly imported: number
  readonly skipped: number
  readonly failed: number
}

export interface WriteIntent {
  readonly key: string
  readonly entity: EntityType
  readonly recordId: string
  readonly operation: string
  /** For creates: the request the operation went out in, its place in it, and the operation as sent. */
  readonly batchKey?: string
  readonly position?: number
  readonly payload?: unknown
}

export interface UnansweredBatch {
  readonly batchKey: string
  /** When it was first sent. */
  readonly sentAt: string
  /** The operations of that request, in their order, exactly as sent. */
  readonly ops: ReadonlyArray<{
    readonly key: string
    readonly payload: unknown
    readonly entity: EntityType
    readonly recordId: string
    /** Its answer is committed (a record, or a refusal). */
    readonly answered: boolean
  }>
}

export interface ConflictRow {
  readonly id: string
  readonly tenantId: string
  readonly connectionId: string
  readonly entity: EntityType
  readonly recordId: string
  readonly path: string
  readonly segments: ReadonlyArray<unknown>
  readonly base: unknown
  readonly app: unknown
  readonly provider: unknown
  readonly status: "open" | "resolved" | "superseded"
}

export interface ParkedItem {
  readonly entity: EntityType
  readonly recordId?: string
  readonly externalId?: string
  /** Operations waiting for this record (they complete when it syncs after resume). */
  readonly operationIds?: ReadonlyArray<string>
}

export const emptyCommit = (tenantId: string, connectionId: string): Commit => ({
  tenantId,
  connectionId,
  records: [],
  links: [],
  bases: [],
  syncStates: [],
  conflicts: [],
  conflictScopes: [],
  audit: [],
  events: [],
  idempotency: [],
  operations: []
})

/** The store failed (connection lost, serialization failure): retryable. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `storage ${this.operation} failed: ${this.reason}`
  }
}

export interface SyncStoreShape {
  readonly connection: (connectionId: string) => Effect.Effect<Option.Option<ConnectionInfo>, StoreError>
  readonly records: (tenantId: string, entity: EntityType, recordIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, AppRecord>, StoreError>
  readonly links: (connectionId: string, entity: EntityType, recordIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Link>, StoreError>
  readonly linksByExternalId: (connectionId: string, entity: EntityType, externalIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Link>, StoreError>
  readonly bases: (connectionId: string, entity: EntityType, recordIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Base>, StoreError>
  readonly openConflicts: (connectionId: string, entity: EntityType, recordIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<OpenConflict>, StoreError>
  readonly conflict: (conflictId: string) => Effect.Effect<Option.Option<ConflictRow>, StoreError>
  /**
   * Records write intents before a provider write. A create also records the
   * request it was sent in (batch key, position, the operation itself), so a
   * retry can replay that exact request and the provider's idempotency key
   * matches.
   */
  readonly recordIntents: (connectionId: string, intents: ReadonlyArray<WriteIntent>) => Effect.Effect<void, StoreError>
  /** The earlier requests (oldest first) that sent any of these create keys and never got their answer committed. */
  readonly unansweredBatches: (connectionId: string, keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<UnansweredBatch>, StoreError>
  /**
   * The earlier requests (oldest first) that sent a create of any of these records, under whatever key, and
   * never got that create's answer committed: a record changed since has another key, and must not be
   * created again before those requests are answered.
   */
  readonly unansweredCreatesOf: (connectionId: string, entity: EntityType, recordIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<UnansweredBatch>, StoreError>
  /**
   * How many creates of `entity` this connection sent since `since` whose answer was never committed
   * (a crash, a lost commit): a provider record nobody links to may be one of them.
   */
  readonly unansweredCreates: (connectionId: string, entity: EntityType, since: Date) => Effect.Effect<number, StoreError>
  readonly commit: (commit: Commit) => Effect.Effect<void, StoreError>
  readonly setConnectionStatus: (connectionId: string, status: ConnectionStatus, reason: string | undefined) => Effect.Effect<void, StoreError>
  /** Takes (and forgets) the work parked while the connection was unavailable. */
  readonly unpark: (connectionId: string) => Effect.Effect<ReadonlyArray<ParkedItem>, StoreError>
  readonly cursor: (connectionId: string, name: string) => Effect.Effect<Option.Option<string>, StoreError>
  readonly setCursor: (connectionId: string, name: string, cursor: string) => Effect.Effect<void, StoreError>
}

export class SyncStore extends Context.Service<SyncStore, SyncStoreShape>()("concord/reconciler/SyncStore") {}

/** The connection cannot reach its provider right now (not authorised, paused, re-auth needed). */
export class ConnectionUnavailable extends Schema.TaggedError<ConnectionUnavailable>()("ConnectionUnavailable", {
  connectionId: Schema.String,
  status: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `connection ${this.connectionId} is ${this.status}: ${this.reason}`
  }
}

export interface ProviderSession {
  readonly provider: Provider.Provider
  readonly client: Provider.ProviderClient
}

/** Opens provider clients for connections (credentials, OAuth app, base URL). */
export class ProviderSessions extends Context.Service<ProviderSessions, {
  readonly open: (connection: ConnectionInfo) => Effect.Effect<ProviderSession, ConnectionUnavailable, Scope.Scope>
  /**
   * About to open sessions for these connections (a poller's batch): reads the stored credentials of
   * those without a session in one go, instead of one read per session. Best effort.
   */
  readonly prepare: (connectionIds: ReadonlyArray<string>) => Effect.Effect<void>
}>()("concord/reconciler/ProviderSessions") {}

/**
 * Crash injection for recovery tests (the server kills the process at the
 * named point when told to); a no-op unless provided.
 */
export const CrashPoint = Context.Reference<(point: "after-provider-write" | "after-commit") => Effect.Effect<void>>(
  "concord/reconciler/CrashPoint",
  { defaultValue: () => () => Effect_void }
)
