/**
 * The connection actor: one `effect/cluster` entity per connection (entity
 * id = connection id). Its mailbox serialises the connection's work, it is
 * placed on exactly one runner, restarted after a defect and passivated when
 * idle (an idle connection costs no CPU and no memory beyond its row).
 *
 * Messages are volatile (the JetStream message is the durable copy): the
 * node's inbound consumer sends each batch to the owning entity and acks the
 * JetStream messages when the entity answers.
 */
import { Clock, Effect, Exit, Option, Schema, Scope } from "effect"
import { Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import { InboundMessage } from "./Inbound.ts"
import type { Provider } from "@concord/providers"
import { type BackfillCheckpoint, type ConnectionInfo, emptyCommit, ProviderSessions, type ProviderSession, SyncStore } from "./Ports.ts"
import { ConflictNotOpen, Resolution, resolve } from "./Conflicts.ts"
import { parkBatch, runBatch } from "./Sync.ts"
import type { Outcome, WorkItem } from "./Work.ts"

type ProviderRecord = Provider.ProviderRecord

export const ProcessItem = Schema.Struct({
  /** Answers are keyed by this (the JetStream stream sequence as text). */
  key: Schema.String,
  /** Stream sequence: orders app changes. */
  seq: Schema.Number,
  message: InboundMessage
})
export type ProcessItem = typeof ProcessItem.Type

const ErrorInfoSchema = Schema.Struct({ tag: Schema.String, message: Schema.String })

export const OutcomeSchema = Schema.Union([
  Schema.Struct({
    _tag: Schema.Literal("Done"),
    status: Schema.Literals(["synced", "conflict", "error", "skipped"]),
    recordId: Schema.optionalKey(Schema.String),
    externalId: Schema.optionalKey(Schema.String)
  }),
  Schema.Struct({ _tag: Schema.Literal("Retry"), error: ErrorInfoSchema, delayMs: Schema.optionalKey(Schema.Number) }),
  Schema.Struct({ _tag: Schema.Literal("Dead"), error: ErrorInfoSchema })
])

export const Process = Rpc.make("Process", {
  payload: { items: Schema.Array(ProcessItem) },
  success: Schema.Array(Schema.Struct({ key: Schema.String, outcome: OutcomeSchema }))
})

/** Forget cached connection settings and provider session (config changed, resumed, re-authorised). */
export const Reload = Rpc.make("Reload")

/** A person decided a conflict: record it and sync the record at once. */
export const Resolve = Rpc.make("Resolve", {
  payload: {
    conflictId: Schema.String,
    resolution: Resolution,
    value: Schema.optionalKey(Schema.Unknown),
    by: Schema.String
  },
  success: Schema.Struct({ conflictId: Schema.String, outcome: OutcomeSchema }),
  error: Schema.Union([ConflictNotOpen, Schema.TaggedStruct("ResolveFailed", { message: Schema.String })])
})

/** A provider record as listed (provider id space). */
export const ListedRecord = Schema.Struct({
  entity: Schema.String,
  externalId: Schema.String,
  version: Schema.String,
  updatedAt: Schema.String,
  record: Schema.Unknown
})

/**
 * One page of a backfill, listed by the backfill's workflow: imported here,
 * in the connection's mailbox, so it never races the live pipeline for the
 * same record. Records already linked (imported before, or synced live) are
 * left alone; the others are pulled exactly like a provider change, and the
 * page's cursor and counters commit in the same transaction.
 */
export const ImportPage = Rpc.make("ImportPage", {
  payload: {
    backfillId: Schema.String,
    entity: Schema.String,
    /** Pages committed before this one. */
    page: Schema.Number,
    /** Where the next page starts (absent: this is the last page). */
    next: Schema.optionalKey(Schema.String),
    records: Schema.Array(ListedRecord)
  },
  success: Schema.Struct({ imported: Schema.Number, skipped: Schema.Number, failed: Schema.Number, retry: Schema.optionalKey(Schema.String) }),
  error: Schema.TaggedStruct("ImportFailed", { message: Schema.String, retry: Schema.Boolean })
})

export const Connection = Entity.make("Connection", [Process, Reload, Resolve, ImportPage])

/** How long a connection's settings are trusted before being read again. */
const CONFIG_TTL_MS = 10_000

export const toWorkItem = (item: ProcessItem): WorkItem => {
  const m = item.message
  switch (m.kind) {
    case "app_change":
      return {
        key: item.key,
        entity: m.entity as WorkItem["entity"],
        recordId: m.recordId,
        source: "app",
        appChange: { ...(m.record === undefined ? {} : { record: m.record as never }), deleted: m.deleted === true, seq: item.seq },
        ...(m.operationId === undefined ? {} : { operationId: m.operationId }),
        correlationId: m.operationId ?? item.key
      }
    case "provider_change":
      return { key: item.key, entity: m.entity as WorkItem["entity"], externalId: m.externalId, source: "provider", correlationId: item.key, occurredAt: m.occurredAt }
    case "resync":
      return {
        key: item.key,
        entity: m.entity as WorkItem["entity"],
        ...(m.recordId === undefined ? {} : { recordId: m.recordId }),
        ...(m.externalId === undefined ? {} : { externalId: m.externalId }),
        source: "resync",
        ...(m.prefer === undefined ? {} : { prefer: m.prefer }),
        ...(m.operationId === undefined ? {} : { operationId: m.operationId }),
        correlationId: m.operationId ?? item.key
      }
  }
}

const answer = (items: ReadonlyArray<ProcessItem>, outcomes: ReadonlyMap<string, Outcome>) =>
  items.map((i) => ({
    key: i.key,
    outcome: outcomes.get(i.key) ?? ({ _tag: "Retry", error: { tag: "NoOutcome", message: "the pipeline gave no answer for this message" } } satisfies Outcome)
  }))

export const layer = Connection.toLayer(
  Effect.gen(function*() {
    const address = yield* Entity.CurrentAddress
    const connectionId = address.entityId
    const store = yield* SyncStore
    const sessions = yield* ProviderSessions
    let cached: { readonly info: ConnectionInfo; readonly at: number } | undefined
    let session: { readonly value: ProviderSession; readonly scope: Scope.Closeable } | undefined
    // A provider session (limiter, HTTP pool) lives in a child scope of this activation.
    const scope = yield* Effect.scope
    const dropSession = Effect.suspend(() => {
      const s = session
      session = undefined
      cached = undefined
      return s === undefined ? Effect.void : Scope.close(s.scope, Exit.void)
    })

    const connection = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (cached !== undefined && now - cached.at < CONFIG_TTL_MS) return Option.some(cached.info)
      const info = yield* store.connection(connectionId)
      if (Option.isSome(info)) cached = { info: info.value, at: now }
      return info
    })

    /** The provider session, opened on first use; a failure says why the connection cannot sync. */
    const sessionFor = (conn: ConnectionInfo) =>
      Effect.gen(function*() {
        if (session !== undefined) return { _tag: "Ok" as const, session: session.value }
        const child = yield* Scope.fork(scope)
        const opened = yield* Effect.exit(sessions.open(conn).pipe(Scope.provide(child)))
        if (opened._tag === "Failure") {
          yield* Scope.close(child, Exit.void)
          const reason = opened.cause.reasons[0]
          return { _tag: "Unavailable" as const, reason: reason?._tag === "Fail" ? reason.error.message : "cannot open a provider session" }
        }
        session = { value: opened.value, scope: child }
        return { _tag: "Ok" as const, session: opened.value }
      })

    const process = (items: ReadonlyArray<ProcessItem>) =>
      Effect.gen(function*() {
        const info = yield* connection
        const work = items.map(toWorkItem)
        if (Option.isNone(info)) {
          const dead: Outcome = { _tag: "Dead", error: { tag: "UnknownConnection", message: `connection ${connectionId} does not exist` } }
          return answer(items, new Map(items.map((i) => [i.key, dead])))
        }
        const conn = info.value
        if (conn.status !== "active") {
          return answer(items, (yield* parkBatch(conn, work, conn.status)).outcomes)
        }
        const opened = yield* sessionFor(conn)
        if (opened._tag === "Unavailable") return answer(items, (yield* parkBatch(conn, work, opened.reason)).outcomes)
        const result = yield* runBatch(conn, opened.session, work)
        // Credentials were refused for good: the vault marked the connection; stop using this session.
        if ([...result.outcomes.values()].some((o) => o._tag === "Retry" && o.error.tag === "NeedsReauth")) {
          yield* dropSession
        }
        return answer(items, result.outcomes)
      }).pipe(
        // A bug must not crash the entity (the cluster would replay the poison batch forever).
        Effect.catchCause((cause) =>
          Effect.logError(`connection ${connectionId}: batch failed`, cause).pipe(
            Effect.as(items.map((i) => ({ key: i.key, outcome: { _tag: "Retry" as const, error: { tag: "Defect", message: "internal error while syncing; will retry" } } })))
          )
        ),
        Effect.annotateLogs({ connection: connectionId })
      )

    return Connection.of({
      Process: ({ payload }) => process(payload.items),
      Reload: () => dropSession,
      Resolve: ({ payload }) =>
        Effect.gen(function*() {
          const info = yield* connection
          if (Option.isNone(info)) return yield* Effect.fail({ _tag: "ResolveFailed" as const, message: `connection ${connectionId} does not exist` })
          const opened = info.value.status === "active" ? yield* sessionFor(info.value) : undefined
          return yield* resolve(info.value, opened?._tag === "Ok" ? opened.session : undefined, payload.conflictId, payload.resolution, payload.value, payload.by)
        }).pipe(
          Effect.catchTag("StoreError", (e) => Effect.fail({ _tag: "ResolveFailed" as const, message: e.message })),
          Effect.catchDefect(() => Effect.fail({ _tag: "ResolveFailed" as const, message: "internal error while resolving the conflict" }))
        ),
      ImportPage: ({ payload }) =>
        Effect.gen(function*() {
          const failed = (message: string, retry: boolean) => Effect.fail({ _tag: "ImportFailed" as const, message, retry })
          const info = yield* connection
          if (Option.isNone(info)) return yield* failed(`connection ${connectionId} does not exist`, false)
          const conn = info.value
          if (conn.status !== "active") return yield* failed(`connection ${connectionId} is ${conn.status}; the backfill waits until it is active`, true)
          const opened = yield* sessionFor(conn)
          if (opened._tag === "Unavailable") return yield* failed(`connection ${connectionId} cannot reach ${conn.provider}: ${opened.reason}`, true)
          const entity = payload.entity as WorkItem["entity"]
          // One per external id, and none that is linked already: those are the live pipeline's.
          const listed = [...new Map(payload.records.map((r) => [r.externalId, r])).values()]
          const linked = listed.length === 0 ? new Map() : yield* store.linksByExternalId(conn.id, entity, listed.map((r) => r.externalId))
          const fresh = listed.filter((r) => !linked.has(r.externalId))
          const size = payload.records.length
          // Records waiting for an unanswered create of ours are not pulled yet: the page is not done, it is imported
          // again later (what it did import is linked by then, and skipped).
          const checkpoint = (s: { readonly pulled: number; readonly failed: number }, waiting = 0): BackfillCheckpoint | undefined => waiting > 0 ? undefined : ({
            backfillId: payload.backfillId,
            page: payload.page,
            cursor: payload.next,
            done: size,
            imported: s.pulled,
            failed: s.failed,
            skipped: size - s.pulled - s.failed
          })
          if (fresh.length === 0) {
            yield* store.commit({ ...emptyCommit(conn.tenantId, conn.id), backfill: checkpoint({ pulled: 0, failed: 0 }) as BackfillCheckpoint })
            return { imported: 0, skipped: size, failed: 0 }
          }
          const items: Array<WorkItem> = fresh.map((r) => ({
            key: `backfill:${payload.backfillId}:${r.externalId}`,
            entity,
            externalId: r.externalId,
            source: "provider",
            correlationId: `backfill:${payload.backfillId}`,
            provider: { entity, externalId: r.externalId, version: r.version, updatedAt: r.updatedAt, record: r.record as ProviderRecord["record"] }
          }))
          // Dependencies it reads on the way yield to live traffic too.
          const result = yield* opened.session.client.withPriority("background", runBatch(conn, opened.session, items, 0, { checkpoint }))
          const retry = [...result.outcomes.values()].find((o) => o._tag === "Retry")
          return {
            imported: result.summary.pulled,
            failed: result.summary.failed,
            skipped: size - result.summary.pulled - result.summary.failed,
            ...(retry?._tag === "Retry" ? { retry: retry.error.message } : {})
          }
        }).pipe(
          Effect.catchTag("StoreError", (e) => Effect.fail({ _tag: "ImportFailed" as const, message: e.message, retry: true })),
          Effect.catchDefect((defect) =>
            Effect.logError(`connection ${connectionId}: backfill page failed`, defect).pipe(
              Effect.andThen(Effect.fail({ _tag: "ImportFailed" as const, message: "internal error while importing a backfill page; will retry", retry: true }))
            )
          ),
          Effect.annotateLogs({ connection: connectionId, backfill: payload.backfillId })
        )
    })
  }),
  { maxIdleTime: "2 minutes" }
)
