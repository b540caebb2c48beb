/**
 * Full-state reconciliation and drift reports.
 *
 * A run covers one connection and the entities it reconciles (the
 * connection's `reconciliation.entities`, else every enabled entity). For
 * each entity it:
 *
 * 1. streams the provider's records page by page (`listPage`, at background
 *    priority so live traffic goes first), remembers each listed external id
 *    in `drift_seen`, and compares each record with its link and app record,
 *    read from Postgres for that page only, on the hash of the comparable
 *    projection (`@concord/reconciler/Drift`);
 * 2. streams, in key order with a keyset cursor, the links the provider did
 *    not list (missing in the provider, or orphaned), then the app records
 *    never linked (missing in the provider when the entity is pushed).
 *
 * Memory holds one page at a time, however many records there are. Each
 * difference is written to `drift_items` as it is found.
 *
 * Then it settles: every item is checked again against current state, and
 * dropped when in-flight work explains it: an inbound message for that
 * record still unacknowledged on `CONCORD_IN`, the record, its link or base
 * changed since the run started (the pipeline is working on it), an open
 * conflict on those fields (already under review), a provider record that
 * may be our own unanswered create, or a difference that is simply gone.
 * What is left is drift: the run completes with its counts, an outbox row
 * publishes `concord.drift.<tenant>.<provider>` (when anything was found),
 * and the items are auto-resolved as the entity's policy allows
 * (`resolutionFor`): a re-push or pull goes through the normal pipeline as a
 * `resync` message (via the outbox, to `CONCORD_IN`), `review` opens
 * conflicts for mismatched fields; each resolution is audited and recorded
 * on its item in the same transaction.
 *
 * One run per connection at a time (a unique index on running runs).
 * Scheduled runs are claimed in `drift_schedule` (the connection's cron, UTC)
 * by one node. The poller starts one (`feed_gap`, `catchUp`) when a change
 * feed could not reach back to a connection's cursor, e.g. QuickBooks after
 * a connection was paused for more than 30 days. A run is an
 * `effect/workflow` workflow whose steps commit a checkpoint (entity,
 * provider cursor, stage) in its `drift_runs` row: killed anywhere, it
 * resumes at its last checkpoint on this node restarted or on another. A
 * run that nevertheless stops sending heartbeats (15 minutes) is marked
 * failed, so the connection can be reconciled again.
 */
import { Refs } from "@concord/core"
import type { Provider } from "@concord/providers"
import * as Drift from "@concord/reconciler/Drift"
import type { DriftEvent } from "@concord/reconciler/Events"
import { subjects } from "@concord/reconciler/Events"
import type { Resync } from "@concord/reconciler/Inbound"
import { type AuditEntry, type ConnectionInfo, emptyCommit, type EntityType, ProviderSessions, SyncStore } from "@concord/reconciler/Ports"
import * as Projection from "@concord/reconciler/Projection"
import { PENDING_CREATE_WINDOW_MS } from "@concord/reconciler/Sync"
import { Cause, Clock, Context, Cron, Duration, Effect, Fiber, Layer, Metric, Option, Queue, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Activity, Workflow, WorkflowEngine } from "effect/workflow"
import { AckPolicy, DeliverPolicy, type JsMsg, nanos } from "nats"
import { randomUUID } from "node:crypto"
import { crashPoint } from "./CrashPoints.ts"
import { Conflict, type DriftItemView, type DriftRunDetail, type DriftRunView, NotFound, type ReconcileRequest, Unprocessable } from "./api/Api.ts"
import { Nats } from "./nats/Nats.ts"
import * as Audit from "./storage/Audit.ts"
import { loadConnection } from "./storage/PgSyncStore.ts"
import { chunks, nonEmpty } from "./storage/Rows.ts"
import { Tenants } from "./Tenants.ts"

type Obj = Record<string, unknown>

// ---------------------------------------------------------------------------
// Settings

const envNumber = (name: string, fallback: number) => {
  const n = Number(process.env[name])
  return Number.isFinite(n) && n > 0 ? n : fallback
}

/** Provider records a page (providers cap it: QuickBooks 1000, Xero 100). */
const PAGE_SIZE = () => envNumber("CONCORD_DRIFT_PAGE_SIZE", 1000)
/** Rows a page of the app side. */
const APP_PAGE = 2000
/** How often the scheduler looks for due runs and for runs whose node died. */
const TICK_MS = () => envNumber("CONCORD_DRIFT_TICK_MS", 30_000)
/** A running run without a heartbeat for this long was left by a node that stopped. */
const STALE_MS = () => envNumber("CONCORD_DRIFT_STALE_MS", 15 * 60_000)

// ---------------------------------------------------------------------------
// Rows and views

/**
 * Why a run started: a connection's schedule, a request through the API, or the poller finding that a
 * provider's change feed could not reach back to the connection's cursor (`feed_gap`).
 */
export type Trigger = "scheduled" | "manual" | "feed_gap"

interface RunRow {
  readonly id: string
  readonly tenant_id: string
  readonly connection_id: string
  readonly provider: string
  readonly trigger: Trigger
  readonly requested_by: string
  readonly status: "running" | "completed" | "failed"
  readonly entities: unknown
  readonly phase: string | null
  readonly provider_records: string | number
  readonly app_records: string | number
  readonly missing_in_provider: number
  readonly missing_in_app: number
  readonly field_mismatch: number
  readonly duplicate_in_provider: number
  readonly unbalanced: number
  readonly orphan_link: number
  readonly explained: number
  readonly resolved: number
  readonly error: string | null
  readonly started_at: Date | string
  readonly finished_at: Date | string | null
}

interface ItemRow {
  readonly id: string | number
  readonly run_id: string
  readonly entity: string
  readonly record_id: string | null
  readonly external_id: string | null
  readonly kind: Drift.DriftKind
  readonly fields: unknown
  readonly detail: unknown
  readonly resolution: Drift.Resolution | null
  readonly resolved_at: Date | string | null
}

const iso = (d: Date | string) => (typeof d === "string" ? new Date(d) : d).toISOString()
const json = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v)

export const runLink = (tenant: string, id: string) => `/v1/tenants/${tenant}/drift/runs/${id}`

const toRunView = (r: RunRow): DriftRunView => {
  const counts = {
    missing_in_provider: r.missing_in_provider,
    missing_in_app: r.missing_in_app,
    field_mismatch: r.field_mismatch,
    duplicate_in_provider: r.duplicate_in_provider,
    unbalanced: r.unbalanced,
    orphan_link: r.orphan_link
  }
  return {
    id: r.id,
    tenant: r.tenant_id,
    connection: r.connection_id,
    provider: r.provider,
    trigger: r.trigger,
    requestedBy: r.requested_by,
    status: r.status,
    entities: json(r.entities) as Array<string>,
    phase: r.phase,
    providerRecords: Number(r.provider_records),
    appRecords: Number(r.app_records),
    counts,
    total: Object.values(counts).reduce((a, b) => a + b, 0),
    explained: r.explained,
    resolved: r.resolved,
    error: r.error,
    startedAt: iso(r.started_at),
    finishedAt: r.finished_at === null ? null : iso(r.finished_at),
    link: runLink(r.tenant_id, r.id)
  }
}

const toItemView = (r: ItemRow): DriftItemView => ({
  id: Number(r.id),
  entity: r.entity,
  recordId: r.record_id,
  externalId: r.external_id,
  kind: r.kind,
  fields: json(r.fields) as DriftItemView["fields"],
  detail: r.detail === null ? null : json(r.detail),
  resolution: r.resolution,
  resolvedAt: r.resolved_at === null ? null : iso(r.resolved_at)
})

// ---------------------------------------------------------------------------
// Metrics

const itemsMetric = Metric.counter("concord_drift_items_total", {
  description: "Drift items found by completed reconciliation runs, by provider and kind",
  incremental: true
})
const runsMetric = Metric.counter("concord_drift_runs_total", {
  description: "Reconciliation runs finished, by provider and status (completed, failed)",
  incremental: true
})
const recordsMetric = Metric.counter("concord_drift_records_total", {
  description: "Provider records compared by reconciliation runs, by provider",
  incremental: true
})

// ---------------------------------------------------------------------------
// The run

class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", { message: Schema.String }) {}

interface LinkedRow {
  readonly record_id: string
  readonly external_id: string
  readonly provider_deleted: boolean
  readonly link_updated: Date | string
  readonly has_app: boolean
  readonly data: unknown
  readonly deleted: boolean | null
  readonly record_updated: Date | string | null
  /** The link or the app record changed since the run started (computed by Postgres on the provider pass). */
  readonly changed?: boolean
}

const millis = (d: Date | string | null | undefined) => (d === null || d === undefined ? 0 : typeof d === "string" ? Date.parse(d) : d.getTime())

/** What the run needs while it runs. */
interface Ctx {
  readonly runId: string
  readonly conn: ConnectionInfo
  readonly startedAt: number
  readonly client: Provider.ProviderClient
  readonly provider: Provider.Provider
}

const directionOf = (conn: ConnectionInfo, entity: EntityType) => conn.config.entities[entity]?.direction

/** The entities a run covers: asked for, else the connection's `reconciliation.entities`, else every enabled one. */
const entitiesFor = (conn: ConnectionInfo, asked: ReadonlyArray<string> | undefined) =>
  asked ?? conn.config.reconciliation?.entities ?? Object.keys(conn.config.entities).filter((e) => conn.config.entities[e as EntityType] !== undefined)

const insertFindings = (runId: string, findings: ReadonlyArray<Drift.Finding>) =>
  Effect.gen(function*() {
    if (findings.length === 0) return
    const sql = yield* SqlClient.SqlClient
    for (const part of chunks(findings, 7)) {
      yield* sql`INSERT INTO drift_items ${sql.insert(nonEmpty(part.map((f) => ({
        run_id: runId,
        entity: f.entity,
        record_id: f.recordId,
        external_id: f.externalId,
        kind: f.kind,
        fields: JSON.stringify(f.fields),
        detail: f.detail === undefined ? null : JSON.stringify(f.detail)
      }))))} ON CONFLICT (run_id, entity, kind, (coalesce(record_id, '')), (coalesce(external_id, ''))) DO NOTHING`
    }
  })

/** Provider records → app id space, using the links of every record they refer to (one query per referenced entity). */
const toAppSpace = (ctx: Ctx, records: ReadonlyArray<Provider.ProviderRecord>, recordIdOf: (p: Provider.ProviderRecord) => string | undefined) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = new Map<string, Set<string>>()
    for (const p of records) {
      for (const ref of Refs.refsOf(p.record)) {
        const set = wanted.get(ref.entity) ?? new Set<string>()
        set.add(ref.id)
        wanted.set(ref.entity, set)
      }
    }
    const byExternal = new Map<string, string>()
    for (const [entity, ids] of wanted) {
      const rows = yield* sql<{ external_id: string; record_id: string }>`
        SELECT external_id, record_id FROM links WHERE connection_id = ${ctx.conn.id} AND entity = ${entity} AND external_id = ANY(${[...ids]})`
      for (const r of rows) byExternal.set(`${entity}|${r.external_id}`, r.record_id)
    }
    return (p: Provider.ProviderRecord, spec: Projection.ProjectionSpec): Obj => {
      const mapped = Refs.mapRefs(p.record, (entity, id) => byExternal.get(`${entity}|${id}`) ?? id) as unknown as Obj
      const id = recordIdOf(p) ?? p.externalId
      return Projection.toAppNames({ ...mapped, id }, spec)
    }
  })

/** The links and app records of a page of provider records (and the page's ids remembered as seen). */
const lookupPage = (ctx: Ctx, entity: EntityType, records: ReadonlyArray<Provider.ProviderRecord>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    if (records.length === 0) return []
    const ids = [...new Set(records.map((r) => r.externalId))]
    // One statement: remember the listed ids (for the links the provider did not list) and read their links and app records.
    return yield* sql<LinkedRow>`
      WITH seen AS (
        INSERT INTO drift_seen (run_id, entity, external_id) SELECT ${runId}, ${entity}, unnest(${ids}::text[]) ON CONFLICT DO NOTHING
      )
      SELECT l.record_id, l.external_id, l.provider_deleted, NULL AS link_updated,
        r.record_id IS NOT NULL AS has_app, r.data, r.deleted, NULL AS record_updated,
        (l.updated_at >= ${new Date(ctx.startedAt)} OR coalesce(r.updated_at >= ${new Date(ctx.startedAt)}, false)) AS changed
      FROM links l LEFT JOIN records r ON r.tenant_id = ${conn.tenantId} AND r.entity = l.entity AND r.record_id = l.record_id
      WHERE l.connection_id = ${conn.id} AND l.entity = ${entity} AND l.external_id = ANY(${ids}::text[])`
  })

/** One page of provider records compared with their links and app records. */
const comparePage = (
  ctx: Ctx,
  entity: EntityType,
  spec: Projection.ProjectionSpec,
  records: ReadonlyArray<Provider.ProviderRecord>,
  linked: ReadonlyArray<LinkedRow>
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    if (records.length === 0) return
    const byExternal = new Map(linked.map((l) => [l.external_id, l]))
    const translate = yield* toAppSpace(ctx, records, (p) => byExternal.get(p.externalId)?.record_id)
    const findings: Array<Drift.Finding> = []
    const unlinked: Array<{ p: Provider.ProviderRecord; record: Obj; key: string | undefined }> = []
    for (const p of records) {
      // Changed at the provider since the run started: live traffic, compared next run.
      if (Date.parse(p.updatedAt) >= ctx.startedAt) continue
      const l = byExternal.get(p.externalId)
      if (l === undefined) {
        const record = translate(p, spec)
        unlinked.push({ p, record, key: Drift.naturalKey(entity, record) })
        continue
      }
      if (l.changed === true) continue
      findings.push(...Drift.classifyLinked({
        entity,
        recordId: l.record_id,
        externalId: l.external_id,
        app: l.has_app ? { data: json(l.data) as Obj, deleted: l.deleted === true } : undefined,
        providerDeleted: l.provider_deleted,
        provider: translate(p, spec),
        spec
      }))
    }
    if (unlinked.length > 0) {
      const field = Drift.naturalKeyField(entity)
      const keys = [...new Set(unlinked.map((u) => u.key).filter((k): k is string => k !== undefined))]
      const sameKey = new Map<string, { recordId: string; externalId: string }>()
      if (field !== undefined && keys.length > 0) {
        // concord_natural_key (migration 13) computes Drift.naturalKey in SQL, and records are indexed on it.
        const rows = yield* sql<{ record_id: string; key: string; external_id: string }>`
          SELECT r.record_id, concord_natural_key(r.entity, r.data) AS key, l.external_id
          FROM records r JOIN links l ON l.connection_id = ${conn.id} AND l.entity = r.entity AND l.record_id = r.record_id
          WHERE r.tenant_id = ${conn.tenantId} AND r.entity = ${entity} AND NOT r.deleted
            AND concord_natural_key(r.entity, r.data) IS NOT NULL AND concord_natural_key(r.entity, r.data) = ANY(${keys}::text[])`
        for (const r of rows) if (!sameKey.has(r.key)) sameKey.set(r.key, { recordId: r.record_id, externalId: r.external_id })
      }
      for (const u of unlinked) {
        const finding = Drift.classifyUnlinkedProvider({
          entity,
          externalId: u.p.externalId,
          provider: u.record,
          sameKey: u.key === undefined ? undefined : sameKey.get(u.key)
        })
        if (finding !== undefined) findings.push({ ...finding, detail: { ...finding.detail, providerUpdatedAt: u.p.updatedAt } })
      }
    }
    yield* insertFindings(runId, findings)
  })

/** Links of `entity` the provider did not list, in record id order. */
const unseenLinks = (ctx: Ctx, entity: EntityType) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    let cursor = ""
    for (;;) {
      const rows = yield* sql<LinkedRow>`
        SELECT l.record_id, l.external_id, l.provider_deleted, l.updated_at AS link_updated,
          r.record_id IS NOT NULL AS has_app, NULL AS data, r.deleted, r.updated_at AS record_updated
        FROM links l LEFT JOIN records r ON r.tenant_id = ${conn.tenantId} AND r.entity = l.entity AND r.record_id = l.record_id
        WHERE l.connection_id = ${conn.id} AND l.entity = ${entity} AND l.record_id > ${cursor}
          AND NOT EXISTS (SELECT 1 FROM drift_seen s WHERE s.run_id = ${runId} AND s.entity = ${entity} AND s.external_id = l.external_id)
        ORDER BY l.record_id LIMIT ${APP_PAGE}`
      if (rows.length === 0) return
      cursor = rows[rows.length - 1]?.record_id as string
      const findings: Array<Drift.Finding> = []
      for (const l of rows) {
        if (millis(l.link_updated) >= ctx.startedAt || millis(l.record_updated) >= ctx.startedAt) continue
        findings.push(...Drift.classifyLinked({
          entity,
          recordId: l.record_id,
          externalId: l.external_id,
          app: l.has_app ? { data: {}, deleted: l.deleted === true } : undefined,
          providerDeleted: l.provider_deleted,
          provider: null,
          spec: { fields: [], customFields: {}, defaults: {} }
        }))
      }
      yield* insertFindings(runId, findings)
      yield* progress(runId, 0, rows.length)
      if (rows.length < APP_PAGE) return
    }
  })

/** Live app records of `entity` that no link of this connection names, in record id order. */
const unlinkedApp = (ctx: Ctx, entity: EntityType) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    const direction = directionOf(conn, entity)
    if (direction !== "push" && direction !== "both") return
    let cursor = ""
    for (;;) {
      const rows = yield* sql<{ record_id: string; updated_at: Date | string }>`
        SELECT r.record_id, r.updated_at FROM records r
        WHERE r.tenant_id = ${conn.tenantId} AND r.entity = ${entity} AND r.record_id > ${cursor} AND NOT r.deleted
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.connection_id = ${conn.id} AND l.entity = ${entity} AND l.record_id = r.record_id)
        ORDER BY r.record_id LIMIT ${APP_PAGE}`
      if (rows.length === 0) return
      cursor = rows[rows.length - 1]?.record_id as string
      const findings = rows
        .filter((r) => millis(r.updated_at) < ctx.startedAt)
        .flatMap((r) => Drift.classifyUnlinkedApp({ entity, recordId: r.record_id, deleted: false, direction }))
      yield* insertFindings(runId, findings)
      yield* progress(runId, 0, rows.length)
      if (rows.length < APP_PAGE) return
    }
  })

const progress = (runId: string, providerRecords: number, appRecords: number, phase?: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      UPDATE drift_runs SET provider_records = provider_records + ${providerRecords}, app_records = app_records + ${appRecords},
        heartbeat_at = now(), phase = COALESCE(${phase ?? null}, phase)
      WHERE id = ${runId}`
  })

// ---------------------------------------------------------------------------
// Settling: what in-flight work explains is not drift

interface InFlight {
  readonly records: ReadonlySet<string>
  readonly externals: ReadonlySet<string>
}

/**
 * Inbound messages of this connection not yet acknowledged by the engine's
 * consumer (from its ack floor to the end of the stream): their records are in flight.
 */
const inFlight = (conn: ConnectionInfo) =>
  Effect.gen(function*() {
    const nats = yield* Nats
    const records = new Set<string>()
    const externals = new Set<string>()
    const stream = nats.names.inbound
    const floor = yield* Effect.tryPromise(() => nats.jsm.consumers.info(stream, nats.names.consumer)).pipe(
      Effect.map((i) => i.ack_floor.stream_seq),
      Effect.orElseSucceed(() => 0)
    )
    yield* Effect.scoped(Effect.gen(function*() {
      const info = yield* Effect.tryPromise(() => nats.jsm.streams.info(stream))
      const last = info.state.last_seq
      if (last <= floor) return
      const consumer = yield* Effect.acquireRelease(
        Effect.tryPromise(() =>
          nats.jsm.consumers.add(stream, {
            ack_policy: AckPolicy.None,
            filter_subject: nats.names.subject(subjects.inbound(conn.tenantId, conn.provider, "app").replace(/\.app$/, ".>")),
            inactive_threshold: nanos(60_000),
            mem_storage: true,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: floor + 1
          })
        ),
        (c) => Effect.promise(() => nats.jsm.consumers.delete(stream, c.name).catch(() => false))
      )
      let remaining = consumer.num_pending
      if (remaining === 0) return
      const reader = yield* Effect.tryPromise(() => nats.js.consumers.get(stream, consumer.name))
      while (remaining > 0) {
        const batch = yield* Effect.tryPromise(async () => {
          const out: Array<JsMsg> = []
          const iter = await reader.fetch({ max_messages: Math.min(256, remaining), expires: 5000 })
          for await (const m of iter) out.push(m)
          return out
        })
        if (batch.length === 0) return
        remaining -= batch.length
        for (const m of batch) {
          if (m.seq > last) return
          try {
            const body = m.json<{ connectionId?: string; entity?: string; recordId?: string; externalId?: string }>()
            if (body.connectionId !== conn.id || typeof body.entity !== "string") continue
            if (typeof body.recordId === "string") records.add(`${body.entity}|${body.recordId}`)
            if (typeof body.externalId === "string") externals.add(`${body.entity}|${body.externalId}`)
          } catch {
            // Not JSON: the consumer dead-letters it; it names no record.
          }
        }
      }
    })).pipe(Effect.catchCause((c) => Effect.logWarning("drift: could not read in-flight inbound messages; settling without them", Cause.squash(c))))
    return { records, externals } satisfies InFlight
  })

/**
 * The provider's records of `entity` changed since shortly before the run
 * started, from its change feed (`listPage` with `modifiedSince`): a set as
 * large as the changes made during the run, not the entity. Undefined when
 * the provider cannot list changes: each item's record is then read again.
 */
const changedSince = (ctx: Ctx, entity: EntityType) =>
  Effect.gen(function*() {
    const capabilities = ctx.provider.entities[entity]
    if (capabilities === undefined || !capabilities.changeFeed) return undefined
    const out = new Set<string>()
    // The query starts a little early (providers filter on whole seconds); records are then kept by their own time.
    const modifiedSince = new Date(ctx.startedAt - 2_000).toISOString()
    let cursor: string | undefined
    do {
      const page = yield* ctx.client.withPriority("background", ctx.client.listPage(entity, { pageSize: PAGE_SIZE(), modifiedSince, ...(cursor === undefined ? {} : { cursor }) })).pipe(
        Effect.mapError((e) => new RunFailed({ message: `listing ${ctx.conn.provider} ${entity} changed since the run started: ${e.message}` }))
      )
      // Changed at or after the start: the records the provider pass skipped or may have seen before they changed.
      for (const r of page.records) if (Date.parse(r.updatedAt) >= ctx.startedAt) out.add(r.externalId)
      cursor = page.next
    } while (cursor !== undefined)
    return out as ReadonlySet<string>
  })

/** Re-checks every item of the run against current state; drops what in-flight work explains. */
const settle = (ctx: Ctx) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    const flight = yield* inFlight(conn)
    const now = yield* Clock.currentTimeMillis
    const changed = new Map<EntityType, ReadonlySet<string> | undefined>()
    const creates = new Map<EntityType, ReadonlyArray<number>>()
    let explained = 0
    let after = 0
    for (;;) {
      const items = yield* sql<ItemRow>`SELECT * FROM drift_items WHERE run_id = ${runId} AND id > ${after} ORDER BY id LIMIT 500`
      if (items.length === 0) break
      after = Number(items[items.length - 1]?.id)
      const drop: Array<number> = []
      const update: Array<{ id: number; fields: ReadonlyArray<Drift.DriftField> }> = []
      for (const item of items) {
        const entity = item.entity as EntityType
        if (!changed.has(entity)) changed.set(entity, yield* changedSince(ctx, entity))
        if (!creates.has(entity)) creates.set(entity, yield* unansweredCreates(ctx, entity, now))
      }
      const snapshot = yield* snapshotOf(ctx, items, (entity) => changed.get(entity) === undefined)
      for (const item of items) {
        const entity = item.entity as EntityType
        const verdict = yield* recheck(ctx, item, flight, changed.get(entity), creates.get(entity) ?? [], snapshot)
        if (verdict === undefined) drop.push(Number(item.id))
        else if (verdict.fields !== undefined) update.push({ id: Number(item.id), fields: verdict.fields })
      }
      if (drop.length > 0) {
        explained += drop.length
        yield* sql`DELETE FROM drift_items WHERE id = ANY(${drop})`
      }
      for (const u of update) yield* sql`UPDATE drift_items SET fields = ${JSON.stringify(u.fields)} WHERE id = ${u.id}`
      yield* sql`UPDATE drift_runs SET heartbeat_at = now() WHERE id = ${runId}`
    }
    return explained
  })

/** When this connection's unanswered creates of `entity` (within the window) were sent: few, they are in flight. */
const unansweredCreates = (ctx: Ctx, entity: EntityType, now: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ created_at: Date | string }>`
      SELECT i.created_at FROM idempotency i
      WHERE i.connection_id = ${ctx.conn.id} AND i.entity = ${entity} AND i.operation = 'create' AND i.external_id IS NULL
        AND i.batch_key IS NOT NULL AND i.created_at > ${new Date(now - PENDING_CREATE_WINDOW_MS)}
        AND NOT EXISTS (SELECT 1 FROM links l WHERE l.connection_id = i.connection_id AND l.entity = i.entity AND l.record_id = i.record_id)
      LIMIT 10000`
    return rows.map((r) => millis(r.created_at))
  })

type SnapshotLink = LinkedRow & { readonly base_updated: Date | string | null }

/** Current links, app records and open conflicts of a batch of items, read with a few queries per entity. */
interface Snapshot {
  readonly byRecord: ReadonlyMap<string, SnapshotLink>
  readonly byExternal: ReadonlyMap<string, SnapshotLink>
  readonly records: ReadonlyMap<string, { readonly deleted: boolean; readonly updated: number }>
  readonly openPaths: ReadonlyMap<string, ReadonlySet<string>>
}

const snapshotOf = (ctx: Ctx, items: ReadonlyArray<ItemRow>, withData: (entity: EntityType) => boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* SyncStore
    const { conn } = ctx
    const byRecord = new Map<string, SnapshotLink>()
    const byExternal = new Map<string, SnapshotLink>()
    const records = new Map<string, { deleted: boolean; updated: number }>()
    const openPaths = new Map<string, Set<string>>()
    const entities = [...new Set(items.map((i) => i.entity as EntityType))]
    for (const entity of entities) {
      const mine = items.filter((i) => i.entity === entity)
      const recordIds = [...new Set(mine.map((i) => i.record_id).filter((x): x is string => x !== null))]
      const externalIds = [...new Set(mine.map((i) => i.external_id).filter((x): x is string => x !== null))]
      const data = withData(entity)
      const links = yield* sql<SnapshotLink>`
        SELECT l.record_id, l.external_id, l.provider_deleted, l.updated_at AS link_updated,
          r.record_id IS NOT NULL AS has_app, ${data ? sql`r.data` : sql`NULL`} AS data, r.deleted, r.updated_at AS record_updated,
          b.updated_at AS base_updated
        FROM links l
          LEFT JOIN records r ON r.tenant_id = ${conn.tenantId} AND r.entity = l.entity AND r.record_id = l.record_id
          LEFT JOIN bases b ON b.connection_id = l.connection_id AND b.entity = l.entity AND b.record_id = l.record_id
        WHERE l.connection_id = ${conn.id} AND l.entity = ${entity}
          AND (l.record_id = ANY(${recordIds}::text[]) OR l.external_id = ANY(${externalIds}::text[]))`
      for (const l of links) {
        byRecord.set(`${entity}|${l.record_id}`, l)
        byExternal.set(`${entity}|${l.external_id}`, l)
      }
      const rows = yield* sql<{ record_id: string; deleted: boolean; updated_at: Date | string }>`
        SELECT record_id, deleted, updated_at FROM records WHERE tenant_id = ${conn.tenantId} AND entity = ${entity} AND record_id = ANY(${recordIds}::text[])`
      for (const r of rows) records.set(`${entity}|${r.record_id}`, { deleted: r.deleted, updated: millis(r.updated_at) })
      const mismatched = [...new Set(mine.filter((i) => i.kind === "field_mismatch" && i.record_id !== null).map((i) => i.record_id as string))]
      if (mismatched.length > 0) {
        for (const c of yield* store.openConflicts(conn.id, entity, mismatched)) {
          const k = `${entity}|${c.recordId}`
          openPaths.set(k, (openPaths.get(k) ?? new Set()).add(c.path))
        }
      }
    }
    return { byRecord, byExternal, records, openPaths } satisfies Snapshot
  })

/** The item as it stands now (undefined: explained, not drift), with its fields refreshed. */
const recheck = (
  ctx: Ctx,
  item: ItemRow,
  flight: InFlight,
  changed: ReadonlySet<string> | undefined,
  creates: ReadonlyArray<number>,
  snapshot: Snapshot
) =>
  Effect.gen(function*() {
    const { conn, client, provider } = ctx
    const entity = item.entity as EntityType
    if (item.record_id !== null && flight.records.has(`${entity}|${item.record_id}`)) return undefined
    if (item.external_id !== null && flight.externals.has(`${entity}|${item.external_id}`)) return undefined
    // The links as they are now: of the record, and of the external id.
    const links = [
      item.record_id === null ? undefined : snapshot.byRecord.get(`${entity}|${item.record_id}`),
      item.external_id === null ? undefined : snapshot.byExternal.get(`${entity}|${item.external_id}`)
    ].filter((l): l is SnapshotLink => l !== undefined)
    // A duplicate names the app record its twin is linked to; the duplicate itself must still be linked to nothing.
    const duplicate = item.kind === "duplicate_in_provider"
    if (duplicate && links.some((l) => l.external_id === item.external_id)) return undefined
    const link = duplicate ? undefined : links.find((l) => item.record_id !== null && l.record_id === item.record_id) ??
      links.find((l) => item.external_id !== null && l.external_id === item.external_id)
    if (links.some((l) => millis(l.link_updated) >= ctx.startedAt || millis(l.record_updated) >= ctx.startedAt || millis(l.base_updated) >= ctx.startedAt)) return undefined
    const appRow = item.record_id === null || duplicate ? undefined : snapshot.records.get(`${entity}|${item.record_id}`)
    if (appRow !== undefined && appRow.updated >= ctx.startedAt) return undefined
    const externalId = link?.external_id ?? item.external_id
    // The item names a link that is gone (or another one) now: the pipeline changed it; not drift.
    if (!duplicate && item.external_id !== null && item.record_id !== null && (link === undefined || link.external_id !== item.external_id)) return undefined
    const fieldsNow = (fields: ReadonlyArray<Drift.DriftField>, recordId: string) => {
      // Fields already under review are conflicts, not drift.
      const open = snapshot.openPaths.get(`${entity}|${recordId}`) ?? new Set<string>()
      const left = fields.filter((f) => !open.has(f.path) && !open.has("(record)"))
      return left.length === 0 ? undefined : { fields: left }
    }
    // Only a create sent before the provider record last changed can be its origin.
    const mayBeOurCreate = (providerUpdatedAt: string) => creates.some((sent) => sent <= Date.parse(providerUpdatedAt) + 1000)
    if (externalId !== null && changed !== undefined) {
      // The provider's change feed says whether the record changed since it was listed: no need to read it again.
      if (changed.has(externalId)) return undefined
      const detail = (item.detail === null ? {} : json(item.detail)) as { providerUpdatedAt?: string }
      if (link === undefined) {
        if (item.kind !== "missing_in_app" && item.kind !== "duplicate_in_provider") return undefined
        if (detail.providerUpdatedAt !== undefined && mayBeOurCreate(detail.providerUpdatedAt)) return undefined
        return { fields: undefined }
      }
      const alive = link.has_app && link.deleted !== true
      const consistent = item.kind === "orphan_link" ? !link.has_app
        : item.kind === "missing_in_app" ? link.has_app && link.deleted === true && !link.provider_deleted
        : alive
      if (!consistent) return undefined
      if (item.kind === "field_mismatch") return fieldsNow(json(item.fields) as Array<Drift.DriftField>, link.record_id)
      return { fields: undefined }
    }
    // The provider's record as it is now.
    let current: Provider.ProviderRecord | null = null
    if (externalId !== null) {
      const read = yield* Effect.exit(client.withPriority("background", client.read(entity, externalId)))
      if (read._tag === "Success") current = read.value
      else {
        const e = Cause.squash(read.cause) as { _tag?: string; message?: string }
        if (e._tag !== "NotFound") return yield* new RunFailed({ message: `re-reading ${conn.provider} ${entity} ${externalId} failed: ${e.message ?? String(e)}` })
      }
      if (current !== null && Date.parse(current.updatedAt) >= ctx.startedAt) return undefined
    }
    const capabilities = provider.entities[entity]
    if (capabilities === undefined) return undefined
    const spec = Projection.specFor(capabilities, conn.config.mapping?.[entity])
    let findings: ReadonlyArray<Drift.Finding>
    if (link !== undefined) {
      const translate = yield* toAppSpace(ctx, current === null ? [] : [current], () => link.record_id)
      findings = Drift.classifyLinked({
        entity,
        recordId: link.record_id,
        externalId: link.external_id,
        app: link.has_app ? { data: json(link.data) as Obj, deleted: link.deleted === true } : undefined,
        providerDeleted: link.provider_deleted,
        provider: current === null ? null : translate(current, spec),
        spec
      })
    } else if (item.kind === "missing_in_app" || item.kind === "duplicate_in_provider") {
      // Still linked to nothing? A provider record that may be our own unanswered create is not drift yet.
      if (current === null || (current.record as unknown as Obj).status === "deleted") return undefined
      if (mayBeOurCreate(current.updatedAt)) return undefined
      return { fields: undefined }
    } else if (item.record_id !== null && appRow !== undefined) {
      findings = Drift.classifyUnlinkedApp({ entity, recordId: item.record_id, deleted: appRow.deleted, direction: directionOf(conn, entity) })
    } else {
      findings = []
    }
    const same = findings.find((f) => f.kind === item.kind)
    if (same === undefined) return undefined
    if (same.kind !== "field_mismatch" || link === undefined) return { fields: undefined }
    return fieldsNow(same.fields, link.record_id)
  })

// ---------------------------------------------------------------------------
// Finishing and auto-resolution

const countsOf = (runId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ kind: Drift.DriftKind; n: string }>`SELECT kind, count(*) AS n FROM drift_items WHERE run_id = ${runId} GROUP BY kind`
    const counts = Drift.emptyCounts()
    for (const r of rows) counts[r.kind] = Number(r.n)
    return counts
  })

const finish = (ctx: Ctx, explained: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { conn, runId } = ctx
    const counts = yield* countsOf(runId)
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    const at = new Date(yield* Clock.currentTimeMillis)
    let finishedHere = false
    yield* sql.withTransaction(Effect.gen(function*() {
      const updated = yield* sql<{ id: string }>`
        UPDATE drift_runs SET status = 'completed', phase = NULL, finished_at = ${at}, heartbeat_at = ${at}, explained = ${explained},
          missing_in_provider = ${counts.missing_in_provider}, missing_in_app = ${counts.missing_in_app},
          field_mismatch = ${counts.field_mismatch}, duplicate_in_provider = ${counts.duplicate_in_provider},
          unbalanced = ${counts.unbalanced}, orphan_link = ${counts.orphan_link}
        WHERE id = ${runId} AND status = 'running' RETURNING id`
      // Finished already (this step is being done again after a crash): the event and audit row exist.
      if (updated.length === 0) return
      finishedHere = true
      yield* Audit.append(conn.tenantId, [{
        connectionId: conn.id,
        action: "drift_run",
        actor: "system",
        correlationId: runId,
        detail: { runId, counts, explained }
      }], at)
      if (total > 0) {
        const event: DriftEvent = {
          type: "drift.found",
          runId,
          tenant: conn.tenantId,
          connectionId: conn.id,
          provider: conn.provider,
          counts,
          link: runLink(conn.tenantId, runId),
          occurredAt: at.toISOString()
        }
        yield* sql`INSERT INTO outbox (subject, payload, created_at) VALUES (${subjects.drift(conn.tenantId, conn.provider)}, ${JSON.stringify(event)}, ${at})`
        yield* sql`SELECT pg_notify('concord_outbox', '')`
      }
    }))
    yield* sql`DELETE FROM drift_seen WHERE run_id = ${runId}`
    if (finishedHere) {
      yield* Metric.update(Metric.withAttributes(runsMetric, { provider: conn.provider, status: "completed" }), 1)
      for (const [kind, n] of Object.entries(counts)) {
        if (n > 0) yield* Metric.update(Metric.withAttributes(itemsMetric, { provider: conn.provider, kind }), n)
      }
    }
    return total
  })

/** Auto-resolves the run's items as each entity's policy allows; audited and recorded per item. */
const autoResolve = (ctx: Ctx) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* SyncStore
    const { conn, runId } = ctx
    let after = 0
    let resolved = 0
    for (;;) {
      const items = yield* sql<ItemRow>`SELECT * FROM drift_items WHERE run_id = ${runId} AND resolution IS NULL AND id > ${after} ORDER BY id LIMIT 200`
      if (items.length === 0) break
      after = Number(items[items.length - 1]?.id)
      const commit = { ...emptyCommit(conn.tenantId, conn.id) }
      const events: Array<{ subject: string; payload: unknown }> = []
      const audit: Array<AuditEntry> = []
      const conflicts: Array<(typeof commit.conflicts)[number]> = []
      const unlink: Array<{ entity: EntityType; recordId: string }> = []
      const decided: Array<{ id: number; resolution: Drift.Resolution }> = []
      const basesOf = new Map<string, Obj>()
      const needBases = items.filter((i) => i.kind === "field_mismatch" && i.record_id !== null)
      for (const i of needBases) {
        const b = yield* store.bases(conn.id, i.entity as EntityType, [i.record_id as string])
        const base = b.get(i.record_id as string)
        if (base !== undefined) basesOf.set(`${i.entity}|${i.record_id}`, base.data)
      }
      for (const item of items) {
        const entity = item.entity as EntityType
        const finding: Drift.Finding = { kind: item.kind, entity, recordId: item.record_id, externalId: item.external_id, fields: json(item.fields) as Array<Drift.DriftField> }
        const resolution = Drift.resolutionFor(finding, conn.config.entities[entity]?.policy, directionOf(conn, entity))
        const resync = (prefer: "app" | "provider" | undefined): Resync => ({
          kind: "resync",
          tenant: conn.tenantId,
          connectionId: conn.id,
          entity,
          ...(item.record_id !== null ? { recordId: item.record_id } : item.external_id !== null ? { externalId: item.external_id } : {}),
          reason: `drift ${item.kind} found by reconciliation ${runId}`,
          ...(prefer === undefined ? {} : { prefer })
        })
        if (resolution === "repush") {
          // A record the provider lost is created afresh: forget the dead link first.
          if (item.kind === "missing_in_provider" && item.external_id !== null && item.record_id !== null) unlink.push({ entity, recordId: item.record_id })
          events.push({ subject: subjects.inbound(conn.tenantId, conn.provider, "system"), payload: resync(item.kind === "missing_in_provider" ? undefined : "app") })
        } else if (resolution === "pull") {
          events.push({ subject: subjects.inbound(conn.tenantId, conn.provider, "system"), payload: resync("provider") })
        } else if (resolution === "conflict" && item.record_id !== null) {
          const base = basesOf.get(`${entity}|${item.record_id}`)
          for (const f of finding.fields) {
            conflicts.push({
              entity,
              recordId: item.record_id,
              path: f.path,
              segments: pathSegments(f.path),
              base: base === undefined ? undefined : getPath(base, pathSegments(f.path)),
              app: f.app,
              provider: f.provider
            })
            audit.push({ connectionId: conn.id, entity, recordId: item.record_id, action: "conflict_opened", actor: "system", correlationId: runId, step: "drift", detail: { path: f.path, app: f.app, provider: f.provider, runId } })
            events.push({
              subject: subjects.conflicts(conn.tenantId, conn.provider),
              payload: {
                type: "conflict.opened",
                conflictId: "",
                tenant: conn.tenantId,
                connectionId: conn.id,
                provider: conn.provider,
                entity,
                recordId: item.record_id,
                path: f.path,
                ...(f.app === undefined ? {} : { app: f.app }),
                ...(f.provider === undefined ? {} : { providerValue: f.provider }),
                occurredAt: new Date().toISOString()
              }
            })
          }
        }
        decided.push({ id: Number(item.id), resolution })
        audit.push({
          connectionId: conn.id,
          entity,
          ...(item.record_id === null ? {} : { recordId: item.record_id }),
          action: "drift_resolved",
          actor: "system",
          correlationId: runId,
          step: "drift",
          detail: { runId, itemId: Number(item.id), kind: item.kind, resolution, externalId: item.external_id }
        })
      }
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* store.commit({ ...commit, conflicts, audit, events, unlink })
        for (const d of decided) {
          yield* sql`UPDATE drift_items SET resolution = ${d.resolution}, resolved_at = now() WHERE id = ${d.id} AND resolution IS NULL`
        }
        const acted = decided.filter((d) => d.resolution !== "review").length
        yield* sql`UPDATE drift_runs SET resolved = resolved + ${acted} WHERE id = ${runId}`
      }))
      resolved += decided.filter((d) => d.resolution !== "review").length
    }
    return resolved
  })

/** `lines[0].amount` → ["lines", 0, "amount"]; `customFields.Region` → ["customFields", "Region"]. */
const pathSegments = (path: string): Array<string | number> =>
  path.split(/\.|\[|\]/).filter((s) => s.length > 0).map((s) => (/^\d+$/.test(s) ? Number(s) : s))

const getPath = (value: unknown, segments: ReadonlyArray<string | number>): unknown => {
  let v: unknown = value
  for (const s of segments) {
    if (typeof v !== "object" || v === null) return undefined
    v = (v as Record<string | number, unknown>)[s]
  }
  return v
}

/** Provider pages one workflow step compares before it commits its checkpoint. */
const PAGES_PER_STEP = () => envNumber("CONCORD_DRIFT_PAGES_PER_STEP", 100)

interface StepRow extends RunRow {
  readonly stage: "provider" | "app" | "settle" | "resolve" | "done"
  readonly entity_index: number
  readonly cursor: string | null
  readonly steps: number
  readonly checkpoint_records: string | number
}

/** Where the run goes after a step, committed only if no other execution of this step committed first. */
const advance = (runId: string, step: number, next: { readonly stage: StepRow["stage"]; readonly entityIndex: number; readonly cursor: string | null }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      UPDATE drift_runs SET stage = ${next.stage}, entity_index = ${next.entityIndex}, cursor = ${next.cursor}, steps = steps + 1,
        checkpoint_records = provider_records, checkpoint_app_records = app_records, heartbeat_at = now()
      WHERE id = ${runId} AND steps = ${step}`
    return { done: next.stage === "done" }
  })

/**
 * Step `step` of a run: the next batch of provider pages of the current entity,
 * or that entity's app side, or settling and finishing, or auto-resolving,
 * whichever the run's committed checkpoint says comes next. Every step is
 * idempotent (items are unique per record and kind, seen ids are a set,
 * settling and resolving only touch what is left), so a step interrupted by
 * a crash is simply done again when the workflow resumes.
 */
const runStep = (runId: string, step: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sessions = yield* ProviderSessions
    const rows = yield* sql<StepRow>`SELECT * FROM drift_runs WHERE id = ${runId}`
    const row = rows[0]
    if (row === undefined || row.status === "failed") return { done: true }
    // A step whose checkpoint committed before its result was stored: answer what it committed.
    if (row.steps > step) return { done: row.steps === step + 1 && row.stage === "done" ? true : false }
    if (row.steps < step) return yield* new RunFailed({ message: `run ${runId} is at step ${row.steps}, not ${step}: its checkpoint was changed by hand` })
    if (row.stage === "done") return { done: true }
    const found = yield* loadConnection(row.connection_id)
    if (Option.isNone(found)) return yield* new RunFailed({ message: `connection ${row.connection_id} no longer exists` })
    const conn = found.value
    if (conn.status !== "active" && row.stage !== "resolve") return yield* new RunFailed({ message: `connection ${conn.id} is ${conn.status}; reconcile it once it is active` })
    return yield* Effect.scoped(Effect.gen(function*() {
      const session = yield* sessions.open(conn).pipe(Effect.mapError((e) => new RunFailed({ message: e.message })))
      const ctx: Ctx = { runId, conn, startedAt: millis(row.started_at), client: session.client, provider: session.provider }
      const entities = (json(row.entities) as Array<string>).filter(Drift.isEntity).filter((e) => session.provider.entities[e]?.read === true)
      const entity = entities[row.entity_index]
      const nextEntity = row.entity_index + 1 < entities.length
        ? { stage: "provider" as const, entityIndex: row.entity_index + 1, cursor: null }
        : { stage: "settle" as const, entityIndex: row.entity_index, cursor: null }

      if ((row.stage === "provider" || row.stage === "app") && entity === undefined) return yield* advance(runId, step, { ...nextEntity, stage: "settle" })

      if (row.stage === "provider" && entity !== undefined) {
        const spec = Projection.specFor(session.provider.entities[entity] as Provider.EntityCapabilities, conn.config.mapping?.[entity])
        yield* progress(runId, 0, 0, `provider ${entity}`)
        const list = (cursor: string | undefined) =>
          session.client.withPriority("background", session.client.listPage(entity, {
            pageSize: PAGE_SIZE(),
            ...(cursor === undefined ? {} : { cursor })
          })).pipe(Effect.mapError((e) => new RunFailed({ message: `listing ${conn.provider} ${entity}: ${e.message}` })))
        // A pipeline: the provider is listed page after page (up to two pages ahead), each page's links and app
        // records are looked up as soon as it arrives, and pages are compared in order. Memory: a few pages.
        const stepScope = yield* Effect.scope
        const queue = yield* Queue.bounded<{
          readonly page: Provider.ListPage
          readonly lookup: Fiber.Fiber<ReadonlyArray<LinkedRow>, unknown>
          readonly last: boolean
        }, RunFailed>(2)
        yield* Effect.forkIn(
          Effect.gen(function*() {
            let from = row.cursor ?? undefined
            for (let n = 1;; n++) {
              const page = yield* list(from)
              const lookup = yield* Effect.forkIn(lookupPage(ctx, entity, page.records), stepScope)
              const last = page.next === undefined || n >= PAGES_PER_STEP()
              yield* Queue.offer(queue, { page, lookup, last })
              if (last) return
              from = page.next
            }
          }).pipe(Effect.catchCause((cause) => {
            const e = Cause.squash(cause)
            return Queue.fail(queue, e instanceof RunFailed ? e : new RunFailed({ message: `listing ${conn.provider} ${entity}: ${String((e as { message?: unknown })?.message ?? e)}` }))
          })),
          stepScope
        )
        const base = Number(row.checkpoint_records)
        let listed = 0
        let reported = yield* Clock.currentTimeMillis
        let cursor: string | undefined
        for (;;) {
          const { page, lookup, last } = yield* Queue.take(queue)
          const linked = yield* Fiber.join(lookup)
          yield* comparePage(ctx, entity, spec, page.records, linked)
          yield* Metric.update(Metric.withAttributes(recordsMetric, { provider: conn.provider }), page.records.length)
          listed += page.records.length
          const now = yield* Clock.currentTimeMillis
          if (now - reported >= 500 || last) {
            yield* sql`UPDATE drift_runs SET provider_records = ${base + listed}, heartbeat_at = now() WHERE id = ${runId}`
            reported = now
          }
          cursor = page.next
          if (last) break
        }
        return yield* advance(runId, step, cursor === undefined
          ? { stage: "app", entityIndex: row.entity_index, cursor: null }
          : { stage: "provider", entityIndex: row.entity_index, cursor })
      }

      if (row.stage === "app" && entity !== undefined) {
        // Done again after a crash, the step counts its rows again from the checkpoint's count.
        yield* sql`UPDATE drift_runs SET app_records = checkpoint_app_records, phase = ${`app ${entity}`}, heartbeat_at = now() WHERE id = ${runId}`
        // Fresh statistics for the seen ids, or the planner anti-joins a million links by scanning them one by one.
        yield* sql`ANALYZE drift_seen`
        yield* unseenLinks(ctx, entity)
        yield* unlinkedApp(ctx, entity)
        yield* crashPoint("after-drift-app-step")
        return yield* advance(runId, step, nextEntity)
      }

      if (row.stage === "settle") {
        yield* progress(runId, 0, 0, "settling")
        const explained = yield* settle(ctx)
        const total = yield* finish(ctx, explained)
        yield* Effect.logInfo(`reconciliation ${runId} of ${conn.id} completed: ${total} drift items (${explained} explained by in-flight work)`)
        const resolve = total > 0 && conn.config.reconciliation?.autoResolve !== false
        return yield* advance(runId, step, { stage: resolve ? "resolve" : "done", entityIndex: row.entity_index, cursor: null })
      }

      const resolved = yield* autoResolve(ctx)
      if (resolved > 0) yield* Effect.logInfo(`reconciliation ${runId}: ${resolved} items auto-resolved`)
      return yield* advance(runId, step, { stage: "done", entityIndex: row.entity_index, cursor: null })
    }))
  }).pipe(
    Effect.catchCause((cause) => {
      const e = Cause.squash(cause) as { message?: string }
      const message = e instanceof RunFailed ? e.message : `internal error: ${typeof e?.message === "string" ? e.message : String(e)}`
      return Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.logWarning(`reconciliation ${runId} failed: ${message}`, cause)
        const failed = yield* sql<{ provider: string }>`
          UPDATE drift_runs SET status = 'failed', stage = 'done', error = ${message}, finished_at = now(), phase = NULL
          WHERE id = ${runId} AND status = 'running' RETURNING provider`
        if (failed[0] !== undefined) yield* Metric.update(Metric.withAttributes(runsMetric, { provider: failed[0].provider, status: "failed" }), 1)
        yield* sql`DELETE FROM drift_seen WHERE run_id = ${runId}`
      }).pipe(Effect.ignore, Effect.as({ done: true }))
    }),
    Effect.annotateLogs({ drift: runId, step })
  )

/**
 * A run is an `effect/workflow` workflow on the cluster's workflow engine: one
 * activity per step. Killed anywhere, it is resumed by the cluster (this node
 * restarted, or another that takes the shard): completed steps replay from
 * storage, the interrupted one runs again from the run's committed checkpoint.
 */
export const DriftWorkflow = Workflow.make("DriftRun", {
  payload: { runId: Schema.String },
  idempotencyKey: ({ runId }) => runId,
  success: Schema.Struct({ done: Schema.Boolean })
})

const StepResult = Schema.Struct({ done: Schema.Boolean })

const workflowLayer = DriftWorkflow.toLayer(({ runId }) =>
  Effect.gen(function*() {
    for (let step = 0;; step++) {
      const result = yield* Activity.make({ name: `step-${step}`, success: StepResult, execute: runStep(runId, step) })
      if (result.done) return result
    }
  })
)

// ---------------------------------------------------------------------------
// The service behind the API, and the scheduler

export class DriftRuns extends Context.Service<DriftRuns, {
  readonly reconcileNow: (tenantId: string, connectionId: string, request: ReconcileRequest, by: string) => Effect.Effect<DriftRunView, NotFound | Unprocessable | Conflict>
  /** Runs of a tenant (or of every tenant), newest first. */
  readonly runs: (tenantId: string | undefined, connectionId: string | undefined, limit: number | undefined) => Effect.Effect<ReadonlyArray<DriftRunView>, NotFound>
  /** One run with a page of its items, of `tenantId` only or of any tenant. */
  readonly run: (tenantId: string | undefined, id: string, page: { readonly offset?: number; readonly limit?: number; readonly kind?: Drift.DriftKind }) => Effect.Effect<DriftRunDetail, NotFound>
  /**
   * Starts a reconciliation of the connection's entities (and `entities`, those enabled) because a change feed
   * skipped changes made between `gap.from` and `gap.to`; none when one is running already (it reads the state
   * after the gap too).
   */
  readonly catchUp: (connectionId: string, entities: ReadonlyArray<string>, gap: { readonly from: string; readonly to: string }) => Effect.Effect<Option.Option<DriftRunView>>
}>()("concord/server/DriftRuns") {}

const newRunId = () => `dr_${randomUUID().replace(/-/g, "").slice(0, 20)}`

const service = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tenants = yield* Tenants
  const engine = yield* WorkflowEngine.WorkflowEngine
  const orDie = <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.orDie(e)
  const launch = (runId: string) =>
    DriftWorkflow.execute({ runId }, { discard: true }).pipe(Effect.provideService(WorkflowEngine.WorkflowEngine, engine), Effect.asVoid)

  /** Inserts a running run (none if one is running already) and starts it on this node. */
  const begin = (conn: { readonly id: string; readonly tenantId: string; readonly provider: string }, trigger: Trigger, by: string, entities: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const id = newRunId()
      const inserted = yield* sql<RunRow>`
        INSERT INTO drift_runs (id, tenant_id, connection_id, provider, trigger, requested_by, entities)
        VALUES (${id}, ${conn.tenantId}, ${conn.id}, ${conn.provider}, ${trigger}, ${by}, ${JSON.stringify(entities)})
        ON CONFLICT (connection_id) WHERE status = 'running' DO NOTHING
        RETURNING *`
      const row = inserted[0]
      if (row === undefined) return Option.none<RunRow>()
      yield* launch(id)
      return Option.some(row)
    })

  const reconcileNow = (tenantId: string, connectionId: string, request: ReconcileRequest, by: string) =>
    Effect.gen(function*() {
      const view = yield* tenants.connection(tenantId, connectionId)
      const found = yield* loadConnection(connectionId).pipe(orDie)
      if (Option.isNone(found)) return yield* new NotFound({ message: `no connection ${connectionId} in tenant ${tenantId}` })
      const conn = found.value
      const issues: Array<{ path: string; message: string }> = []
      if (request.entities !== undefined && request.entities.length === 0) issues.push({ path: "entities", message: "Expected at least one entity" })
      ;(request.entities ?? []).forEach((e, i) => {
        if (!Drift.isEntity(e)) issues.push({ path: `entities[${i}]`, message: `${JSON.stringify(e)} is not an entity type` })
        else if (conn.config.entities[e] === undefined) issues.push({ path: `entities[${i}]`, message: `${e} is not enabled for connection ${connectionId}` })
      })
      const entities = entitiesFor(conn, request.entities)
      if (issues.length === 0 && entities.length === 0) issues.push({ path: "entities", message: `connection ${connectionId} has no enabled entity to reconcile` })
      if (conn.status !== "active") issues.push({ path: "connection", message: `connection ${connectionId} is ${view.status}; reconcile it once it is active` })
      if (issues.length > 0) {
        return yield* new Unprocessable({ message: `cannot reconcile: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues })
      }
      const started = yield* begin(conn, "manual", by, entities).pipe(orDie)
      if (Option.isNone(started)) {
        const running = yield* sql<{ id: string }>`SELECT id FROM drift_runs WHERE connection_id = ${connectionId} AND status = 'running'`.pipe(orDie)
        return yield* new Conflict({ message: `a reconciliation of connection ${connectionId} is running already (${running[0]?.id ?? "?"}); wait for it` })
      }
      return toRunView(started.value)
    })

  const runs = (tenantId: string | undefined, connectionId: string | undefined, limit: number | undefined) =>
    Effect.gen(function*() {
      if (tenantId !== undefined) yield* tenants.config(tenantId)
      if (tenantId !== undefined && connectionId !== undefined) yield* tenants.connection(tenantId, connectionId)
      const rows = yield* sql<RunRow>`
        SELECT * FROM drift_runs
        WHERE (${tenantId ?? null}::text IS NULL OR tenant_id = ${tenantId ?? null})
          AND (${connectionId ?? null}::text IS NULL OR connection_id = ${connectionId ?? null})
        ORDER BY started_at DESC, id LIMIT ${limit ?? 100}`.pipe(orDie)
      return rows.map(toRunView)
    })

  const run = (tenantId: string | undefined, id: string, page: { readonly offset?: number; readonly limit?: number; readonly kind?: Drift.DriftKind }) =>
    Effect.gen(function*() {
      const rows = yield* sql<RunRow>`SELECT * FROM drift_runs WHERE id = ${id} AND (${tenantId ?? null}::text IS NULL OR tenant_id = ${tenantId ?? null})`.pipe(orDie)
      const row = rows[0]
      if (row === undefined) return yield* new NotFound({ message: `no drift run ${id}${tenantId === undefined ? "" : ` in tenant ${tenantId}`}` })
      const offset = page.offset ?? 0
      const limit = page.limit ?? 100
      const kind = page.kind ?? null
      const items = yield* sql<ItemRow>`
        SELECT * FROM drift_items WHERE run_id = ${id} AND (${kind}::text IS NULL OR kind = ${kind})
        ORDER BY id OFFSET ${offset} LIMIT ${limit}`.pipe(orDie)
      const total = yield* sql<{ n: string }>`SELECT count(*) AS n FROM drift_items WHERE run_id = ${id} AND (${kind}::text IS NULL OR kind = ${kind})`.pipe(orDie)
      const totalItems = Number(total[0]?.n ?? 0)
      return {
        run: toRunView(row),
        items: items.map(toItemView),
        totalItems,
        nextOffset: offset + items.length < totalItems ? offset + items.length : null
      } satisfies DriftRunDetail
    })

  const catchUp = (connectionId: string, asked: ReadonlyArray<string>, gap: { readonly from: string; readonly to: string }) =>
    Effect.gen(function*() {
      const found = yield* loadConnection(connectionId)
      if (Option.isNone(found) || found.value.status !== "active") return Option.none<DriftRunView>()
      const conn = found.value
      // Every entity the connection reconciles, and those of the feed that skipped (if enabled): a connection whose
      // feed reached back no further was offline that long, so its other feeds skipped too (an adaptive and a
      // safety poll falling due together start one run, not one that blocks the other).
      const enabled = asked.filter((e) => conn.config.entities[e as EntityType] !== undefined)
      const entities = [...new Set([...entitiesFor(conn, undefined), ...enabled])]
      if (entities.length === 0) return Option.none<DriftRunView>()
      const started = yield* begin(conn, "feed_gap", "poller", entities)
      if (Option.isSome(started)) {
        yield* Effect.logWarning(
          `reconciliation ${started.value.id} of ${connectionId} (${entities.join(", ")}) started: the ${conn.provider} change feed skipped changes made between ${gap.from} and ${gap.to}`
        )
      }
      return Option.map(started, toRunView)
    }).pipe(
      Effect.provideService(SqlClient.SqlClient, sql),
      Effect.catchCause((c) => Effect.logWarning(`could not start the reconciliation of ${connectionId} after a change-feed gap`, Cause.squash(c)).pipe(Effect.as(Option.none<DriftRunView>())))
    )

  // The scheduler: due runs by each connection's cron (claimed in drift_schedule by one node), and runs left by dead nodes.
  const tick = Effect.gen(function*() {
    const dead = yield* sql<{ id: string }>`
      UPDATE drift_runs SET status = 'failed', finished_at = now(), phase = NULL,
        error = 'the node running it stopped (no heartbeat); the next run starts afresh'
      WHERE status = 'running' AND heartbeat_at < ${new Date(Date.now() - STALE_MS())} RETURNING id`
    for (const d of dead) yield* sql`DELETE FROM drift_seen WHERE run_id = ${d.id}`
    // Only connections with a schedule come back (the tenants' configs are searched in Postgres), with their stored
    // schedule: in the steady state a tick is this one query, however many connections there are.
    const conns = yield* sql<{ id: string; tenant_id: string; provider: string; schedule: string; stored: string | null; next_run_at: Date | string | null }>`
      SELECT c.id, c.tenant_id, c.provider, cc.value->'reconciliation'->>'schedule' AS schedule, s.schedule AS stored, s.next_run_at
      FROM connections c
        JOIN tenants t ON t.id = c.tenant_id
        CROSS JOIN LATERAL jsonb_array_elements(t.config->'connections') AS cc(value)
        LEFT JOIN drift_schedule s ON s.connection_id = c.id
      WHERE c.status = 'active' AND cc.value->>'id' = c.id AND cc.value->'reconciliation' ? 'schedule'`
    const now = yield* Clock.currentTimeMillis
    for (const c of conns) {
      const changed = c.stored !== c.schedule
      // Unchanged and not due (nearly every connection, every tick): nothing to compute.
      if (!changed && (c.next_run_at === null || millis(c.next_run_at) > now)) continue
      const cron = Cron.parse(c.schedule)
      if (cron._tag === "Failure") continue
      const next = Cron.next(cron.success, new Date(now))
      if (changed) {
        // A new or changed schedule starts counting from now.
        yield* sql`
          INSERT INTO drift_schedule (connection_id, schedule, next_run_at) VALUES (${c.id}, ${c.schedule}, ${next})
          ON CONFLICT (connection_id) DO UPDATE SET schedule = EXCLUDED.schedule, next_run_at = EXCLUDED.next_run_at
          WHERE drift_schedule.schedule <> EXCLUDED.schedule`
        continue
      }
      // Due: one node claims it.
      const claimed = yield* sql<{ connection_id: string }>`
        UPDATE drift_schedule SET next_run_at = ${next}
        WHERE connection_id = ${c.id} AND next_run_at <= ${new Date(now)} RETURNING connection_id`
      if (claimed.length === 0) continue
      const found = yield* loadConnection(c.id)
      if (Option.isNone(found)) continue
      const started = yield* begin({ id: c.id, tenantId: c.tenant_id, provider: c.provider }, "scheduled", "schedule", entitiesFor(found.value, undefined))
      if (Option.isSome(started)) yield* Effect.logInfo(`scheduled reconciliation ${started.value.id} of ${c.id} started (${c.schedule})`)
    }
  }).pipe(Effect.catchCause((c) => Effect.logWarning("drift scheduler tick failed", Cause.squash(c))))

  // Belt and braces: a run inserted by a node that died before starting its workflow (starting one that exists joins it).
  const running = yield* sql<{ id: string }>`SELECT id FROM drift_runs WHERE status = 'running'`.pipe(Effect.orElseSucceed(() => []))
  for (const r of running) yield* launch(r.id).pipe(Effect.catchCause((c) => Effect.logWarning(`reconciliation ${r.id} could not be resumed`, Cause.squash(c))))

  yield* Effect.forkScoped(tick.pipe(Effect.repeat(Schedule.spaced(Duration.millis(TICK_MS())))))

  return DriftRuns.of({
    reconcileNow: (t, c, r, by) => reconcileNow(t, c, r, by).pipe(Effect.provideService(SqlClient.SqlClient, sql)),
    runs,
    run,
    catchUp
  })
})

/** The workflow registered with the engine, and the service (needs the cluster, the store, sessions, NATS, tenants). */
export const layer = Layer.effect(DriftRuns, service).pipe(Layer.provideMerge(workflowLayer))
