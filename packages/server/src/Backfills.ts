/**
 * Resumable backfills: import years of a provider's history, per connection
 * and entity, page by page.
 *
 * Each backfill is an `effect/workflow` workflow on the cluster's workflow
 * engine (Cluster.ts): one activity per page. A page is listed from the
 * provider at background priority (`listPage`, an opaque resumable cursor),
 * then handed to the connection's actor (`ImportPage`), which imports the
 * records that are not linked yet through the same pipeline a pulled
 * provider change goes through (records, links, bases, audit, change events
 * in the outbox) and commits the next cursor and the counters of the
 * `backfills` row in that same transaction.
 *
 * Killed at any point, the workflow is resumed by the cluster (this node
 * restarted, or another that takes the shard): completed activities replay
 * from storage, and the page that was running starts again from the row's
 * committed cursor. A page whose commit landed but whose activity result was
 * lost sees the row already past it and does nothing; a page imported twice
 * writes nothing twice, because linked records are skipped and the
 * checkpoint only applies to the page the row waits for.
 */
import { Canonical } from "@concord/core"
import type { Provider } from "@concord/providers"
import { Connection } from "@concord/reconciler/ConnectionActor"
import { type ConnectionInfo, ProviderSessions } from "@concord/reconciler/Ports"
import { Clock, Context, Duration, Effect, Layer, Metric, Option, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Activity, Workflow, WorkflowEngine } from "effect/workflow"
import { randomUUID } from "node:crypto"
import { BackfillStatus as BackfillStatusSchema, type BackfillStatus, type BackfillView, Conflict, NotFound, type StartBackfill, Unprocessable } from "./api/Api.ts"
import { crashPoint } from "./CrashPoints.ts"
import { loadConnection } from "./storage/PgSyncStore.ts"
import { nonEmpty } from "./storage/Rows.ts"
import { Tenants } from "./Tenants.ts"

// ---------------------------------------------------------------------------
// Views

interface Row {
  readonly id: string
  readonly tenant_id: string
  readonly connection_id: string
  readonly entity: string
  readonly status: BackfillStatus
  readonly since: Date | string | null
  readonly page_size: number
  readonly cursor: string | null
  readonly pages: number
  readonly done: string | number
  readonly imported: string | number
  readonly skipped: string | number
  readonly failed: string | number
  readonly total: string | number | null
  readonly rate: number | null
  readonly error: string | null
  readonly started_at: Date | string
  readonly updated_at: Date | string
  readonly finished_at: Date | string | null
}

const iso = (d: Date | string) => (typeof d === "string" ? new Date(d) : d).toISOString()

const toView = (r: Row, now: number): BackfillView => {
  const done = Number(r.done)
  const total = r.total === null ? null : Number(r.total)
  const elapsed = ((r.status === "running" ? now : Date.parse(iso(r.updated_at))) - Date.parse(iso(r.started_at))) / 1000
  const rate = done === 0 ? (r.rate ?? null) : elapsed > 0 ? done / elapsed : r.rate
  const eta = r.status !== "running" ? 0 : total === null || rate === null || rate <= 0 ? null : Math.max(0, (total - done) / rate)
  return {
    id: r.id,
    tenant: r.tenant_id,
    connection: r.connection_id,
    entity: r.entity,
    status: r.status,
    since: r.since === null ? null : iso(r.since),
    pageSize: r.page_size,
    pages: r.pages,
    done,
    total,
    imported: Number(r.imported),
    skipped: Number(r.skipped),
    failed: Number(r.failed),
    rate: rate === null ? null : Math.round(rate * 10) / 10,
    etaSeconds: eta === null ? null : Math.round(eta),
    error: r.error,
    startedAt: iso(r.started_at),
    updatedAt: iso(r.updated_at),
    finishedAt: r.finished_at === null ? null : iso(r.finished_at)
  }
}

// ---------------------------------------------------------------------------
// Metrics

const recordsMetric = Metric.counter("concord_backfill_records_total", {
  description: "Records processed by backfills, by outcome (imported, skipped: already linked, failed)",
  incremental: true
})
const runningMetric = Metric.gauge("concord_backfills_running", { description: "Backfills in progress (every node's)" })
const remainingMetric = Metric.gauge("concord_backfill_records_remaining", { description: "Records left to import by running backfills that know their total" })

// ---------------------------------------------------------------------------
// The workflow

export const BackfillWorkflow = Workflow.make("Backfill", {
  payload: { backfillId: Schema.String },
  idempotencyKey: ({ backfillId }) => backfillId,
  success: Schema.Struct({ status: BackfillStatusSchema })
})

const PageResult = Schema.Struct({ status: BackfillStatusSchema })

/** A failure worth waiting out (the provider is down, the connection paused): retried. */
class Transient extends Schema.TaggedError<Transient>()("Transient", { message: Schema.String }) {}
/** A failure that retrying will not fix: the backfill fails with it. */
class Permanent extends Schema.TaggedError<Permanent>()("Permanent", { message: Schema.String }) {}

const permanentProvider = new Set(["ProviderRejected", "Unsupported", "ProviderProtocolError", "AuthFailed"])

const providerFailure = (e: { readonly _tag: string; readonly message: string }) =>
  permanentProvider.has(e._tag) ? new Permanent({ message: e.message }) : new Transient({ message: e.message })

/** How long a waiting page sleeps between attempts. */
const retrySchedule = Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("30 seconds")])

const workflowLayer = BackfillWorkflow.toLayer(({ backfillId }) =>
  Effect.gen(function*() {
    yield* Activity.make({ name: "count", execute: countTotal(backfillId) })
    for (let page = 0;; page++) {
      const result = yield* Activity.make({ name: `page-${page}`, success: PageResult, execute: runPage(backfillId, page) })
      if (result.status !== "running") return result
    }
  })
)

const load = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Row>`SELECT * FROM backfills WHERE id = ${id}`
    return Option.fromNullishOr(rows[0])
  })

/** The provider's count of records in the window, when it can count (an estimate: records change meanwhile). */
const countTotal = (id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sessions = yield* ProviderSessions
    const row = yield* load(id)
    if (Option.isNone(row) || row.value.status !== "running" || row.value.total !== null) return
    const conn = yield* loadConnection(row.value.connection_id)
    if (Option.isNone(conn)) return
    const { client } = yield* sessions.open(conn.value)
    if (client.count === undefined) return
    const n = yield* client.withPriority("background", client.count(row.value.entity as Provider.EntityType, sinceOption(row.value)))
    yield* sql`UPDATE backfills SET total = ${n} WHERE id = ${id} AND total IS NULL`
  }).pipe(
    Effect.scoped,
    Effect.catchCause((cause) => Effect.logWarning(`backfill ${id}: could not count the records; progress will show no total`, cause)),
    Effect.annotateLogs({ backfill: id })
  )

const sinceOption = (row: Row): Provider.ListOptions => (row.since === null ? {} : { modifiedSince: iso(row.since) })

/**
 * Page `page` of the backfill: list it, import it, and answer the row's
 * status once the page is committed (or was already).
 */
const runPage = (id: string, page: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sessions = yield* ProviderSessions
    const actors = yield* Connection.client

    const attempt = Effect.gen(function*() {
      const found = yield* load(id).pipe(Effect.mapError((e) => new Transient({ message: `reading backfill ${id}: ${e.message}` })))
      if (Option.isNone(found)) return "failed" as const
      const row = found.value
      if (row.status !== "running" || row.pages > page) return row.status
      if (row.pages < page) return yield* new Permanent({ message: `backfill ${id} is at page ${row.pages + 1}, not ${page + 1}: its checkpoints were changed by hand` })
      const conn: ConnectionInfo = yield* loadConnection(row.connection_id).pipe(
        Effect.mapError((e) => new Transient({ message: `reading connection ${row.connection_id}: ${e.message}` })),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new Permanent({ message: `connection ${row.connection_id} no longer exists` })),
          onSome: Effect.succeed
        }))
      )
      if (conn.status !== "active") return yield* new Transient({ message: `connection ${conn.id} is ${conn.status}; waiting until it is active` })
      const listed = yield* Effect.scoped(Effect.gen(function*() {
        const { client } = yield* sessions.open(conn).pipe(Effect.mapError((e) => new Transient({ message: e.message })))
        return yield* client.withPriority("background", client.listPage(row.entity as Provider.EntityType, {
          pageSize: row.page_size,
          ...sinceOption(row),
          ...(row.cursor === null ? {} : { cursor: row.cursor })
        })).pipe(Effect.mapError(providerFailure))
      }))
      const answer = yield* actors(conn.id).ImportPage({
        backfillId: id,
        entity: row.entity,
        page,
        ...(listed.next === undefined ? {} : { next: listed.next }),
        records: listed.records.map((r) => ({ entity: r.entity, externalId: r.externalId, version: r.version, updatedAt: r.updatedAt, record: r.record }))
      }).pipe(
        Effect.mapError((e): Transient | Permanent =>
          e._tag === "ImportFailed"
            ? (e.retry ? new Transient({ message: e.message }) : new Permanent({ message: e.message }))
            : new Transient({ message: `the connection's actor did not answer (${e._tag})` })
        )
      )
      const after = yield* load(id).pipe(Effect.mapError((e) => new Transient({ message: `reading backfill ${id}: ${e.message}` })))
      if (Option.isNone(after)) return "failed" as const
      if (after.value.pages <= page) {
        if (after.value.status !== "running") return after.value.status
        return yield* new Transient({ message: `page ${page + 1} did not commit${answer.retry === undefined ? "" : `: ${answer.retry}`}` })
      }
      // Recovery tests kill the process here: the page is committed, the activity's result not yet stored.
      yield* crashPoint("after-backfill-page")
      const provider = conn.provider
      // A bulk import outgrows the planner's statistics faster than autovacuum refreshes them, and
      // stale ones turn the per-page link lookup into a scan of every link (measured: ~1 s a page at
      // 50,000 links, and growing). Refresh them after pages 1, 2, 4, 8, … and then every 64 pages.
      const n = page + 1
      if (answer.imported > 0 && ((n & (n - 1)) === 0 || n % 64 === 0)) {
        yield* sql`ANALYZE links, bases, records`.pipe(Effect.catchCause((c) => Effect.logWarning("could not refresh table statistics", c)))
      }
      yield* Effect.logInfo(`backfill ${id} page ${page + 1} committed: ${answer.imported} imported, ${answer.skipped} already there, ${answer.failed} failed (${after.value.done}${after.value.total === null ? "" : `/${after.value.total}`} done)`)
      yield* Effect.all([
        Metric.update(Metric.withAttributes(recordsMetric, { provider, entity: row.entity, outcome: "imported" }), answer.imported),
        Metric.update(Metric.withAttributes(recordsMetric, { provider, entity: row.entity, outcome: "skipped" }), answer.skipped),
        Metric.update(Metric.withAttributes(recordsMetric, { provider, entity: row.entity, outcome: "failed" }), answer.failed)
      ], { discard: true })
      return after.value.status
    })

    const noteWaiting = (message: string) =>
      sql`UPDATE backfills SET error = ${`waiting: ${message}`}, updated_at = now() WHERE id = ${id} AND status = 'running'`.pipe(Effect.ignore)

    const status = yield* attempt.pipe(
      Effect.tapError((e) => (e._tag === "Transient" ? noteWaiting(e.message).pipe(Effect.andThen(Effect.logWarning(`backfill ${id} page ${page + 1}: ${e.message}; will retry`))) : Effect.void)),
      Effect.retry({ while: (e) => e._tag === "Transient", schedule: retrySchedule }),
      Effect.catchTag("Permanent", (e) =>
        sql`UPDATE backfills SET status = 'failed', error = ${e.message}, finished_at = now(), updated_at = now() WHERE id = ${id} AND status = 'running'`.pipe(
          Effect.andThen(Effect.logError(`backfill ${id} failed: ${e.message}`)),
          Effect.as("failed" as const)
        )),
      Effect.orDie
    )
    return { status }
  }).pipe(Effect.annotateLogs({ backfill: id, page: page + 1 }))

// ---------------------------------------------------------------------------
// The service behind the API

export class Backfills extends Context.Service<Backfills, {
  readonly start: (tenantId: string, connectionId: string, request: StartBackfill) => Effect.Effect<ReadonlyArray<BackfillView>, NotFound | Unprocessable | Conflict>
  readonly list: (tenantId: string, connectionId: string | undefined) => Effect.Effect<ReadonlyArray<BackfillView>, NotFound>
  readonly get: (tenantId: string, id: string) => Effect.Effect<BackfillView, NotFound>
  readonly cancel: (tenantId: string, id: string) => Effect.Effect<BackfillView, NotFound | Conflict>
  /** Backfills of every tenant, or of `tenantId` only. */
  readonly all: (tenantId: string | undefined, status: BackfillStatus | undefined) => Effect.Effect<ReadonlyArray<BackfillView>>
  /** One backfill by id, of any tenant or of `tenantId` only. */
  readonly find: (tenantId: string | undefined, id: string) => Effect.Effect<BackfillView, NotFound>
}>()("concord/server/Backfills") {}

const DEFAULT_PAGE_SIZE = 500

/** Reference data first, so what a page refers to is mostly imported already. */
const ORDER: ReadonlyArray<string> = [
  "currency", "tax_rate", "account", "tracking_category", "contact", "item",
  "invoice", "bill", "credit_note", "vendor_credit", "sales_receipt", "expense", "journal_entry", "transfer",
  "refund", "payment", "bill_payment", "deposit"
]

const parseSince = (text: string): number | undefined => {
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined
  const ms = Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text)
  return Number.isNaN(ms) ? undefined : ms
}

const service = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tenants = yield* Tenants
  const orDie = <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.orDie(e)
  const withSql = <A, E, R>(e: Effect.Effect<A, E, R>) => e.pipe(Effect.provideService(SqlClient.SqlClient, sql))
  const engine = yield* WorkflowEngine.WorkflowEngine
  const launch = (backfillId: string) =>
    BackfillWorkflow.execute({ backfillId }, { discard: true }).pipe(Effect.provideService(WorkflowEngine.WorkflowEngine, engine))

  const start = (tenantId: string, connectionId: string, request: StartBackfill) =>
    Effect.gen(function*() {
      yield* tenants.connection(tenantId, connectionId)
      const config = yield* tenants.config(tenantId)
      const conn = config.connections.find((c) => c.id === connectionId)
      const settings = conn?.backfill
      const issues: Array<{ path: string; message: string }> = []
      if (request.since !== undefined && request.years !== undefined) issues.push({ path: "since", message: "give since or years, not both" })
      if (request.years !== undefined && !(Number.isInteger(request.years) && request.years >= 1 && request.years <= 30)) {
        issues.push({ path: "years", message: "Expected a whole number of years between 1 and 30" })
      }
      if (request.pageSize !== undefined && !(Number.isInteger(request.pageSize) && request.pageSize >= 1 && request.pageSize <= 1000)) {
        issues.push({ path: "pageSize", message: "Expected a whole number between 1 and 1000" })
      }
      let since: number | undefined
      const now = yield* Clock.currentTimeMillis
      const yearsAgo = (n: number) => {
        const d = new Date(now)
        d.setUTCFullYear(d.getUTCFullYear() - n)
        return d.getTime()
      }
      if (request.since !== undefined) {
        since = parseSince(request.since)
        if (since === undefined) issues.push({ path: "since", message: `Expected a date (YYYY-MM-DD) or an RFC 3339 instant, got ${JSON.stringify(request.since)}` })
      } else if (request.years !== undefined) since = yearsAgo(request.years)
      else if (settings?.since !== undefined) since = parseSince(settings.since)
      else if (settings?.years !== undefined) since = yearsAgo(settings.years)

      const pulled = Object.entries(conn?.entities ?? {})
        .filter(([, s]) => s?.direction === "pull" || s?.direction === "both")
        .map(([e]) => e)
      const wanted = request.entities ?? settings?.entities ?? pulled
      if (request.entities !== undefined && request.entities.length === 0) issues.push({ path: "entities", message: "Expected at least one entity" })
      wanted.forEach((entity, i) => {
        if (!Schema.is(Canonical.EntityType)(entity)) {
          issues.push({ path: `entities[${i}]`, message: `${JSON.stringify(entity)} is not an entity type` })
        } else if (!pulled.includes(entity)) {
          issues.push({ path: `entities[${i}]`, message: `connection ${connectionId} does not pull ${entity} (enable it with direction pull or both)` })
        }
      })
      if (wanted.length === 0 && issues.length === 0) {
        issues.push({ path: "entities", message: `connection ${connectionId} pulls no entity: nothing to backfill` })
      }
      if (issues.length > 0) {
        return yield* new Unprocessable({ message: `cannot start a backfill: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues })
      }
      const entities = [...new Set(wanted)].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b))
      const pageSize = request.pageSize ?? DEFAULT_PAGE_SIZE
      const ids = entities.map(() => `bf_${randomUUID().replace(/-/g, "").slice(0, 20)}`)
      // All or none: a backfill of an entity that is already running refuses the whole request.
      const inserted = yield* sql.withTransaction(Effect.gen(function*() {
        const running = yield* sql<{ id: string; entity: string }>`
          SELECT id, entity FROM backfills WHERE connection_id = ${connectionId} AND status = 'running' AND entity IN ${sql.in(entities)}`
        if (running.length > 0) return Option.some(running)
        yield* sql`INSERT INTO backfills ${sql.insert(nonEmpty(entities.map((entity, i) => ({
          id: ids[i] as string,
          tenant_id: tenantId,
          connection_id: connectionId,
          entity,
          since: since === undefined ? null : new Date(since),
          page_size: pageSize
        }))))}`
        return Option.none()
      })).pipe(orDie)
      if (Option.isSome(inserted)) {
        return yield* new Conflict({
          message: `a backfill is already running for ${inserted.value.map((r) => `${r.entity} (${r.id})`).join(", ")} of connection ${connectionId}; cancel it or wait for it`
        })
      }
      for (const id of ids) yield* launch(id).pipe(orDie)
      const rows = yield* sql<Row>`SELECT * FROM backfills WHERE id IN ${sql.in(ids)}`.pipe(orDie)
      const at = yield* Clock.currentTimeMillis
      return ids.map((id) => toView(rows.find((r) => r.id === id) as Row, at))
    })

  const list = (tenantId: string, connectionId: string | undefined) =>
    Effect.gen(function*() {
      yield* tenants.config(tenantId)
      if (connectionId !== undefined) yield* tenants.connection(tenantId, connectionId)
      const rows = yield* sql<Row>`
        SELECT * FROM backfills WHERE tenant_id = ${tenantId}
          AND (${connectionId ?? null}::text IS NULL OR connection_id = ${connectionId ?? null})
        ORDER BY started_at DESC, entity`.pipe(orDie)
      const now = yield* Clock.currentTimeMillis
      return rows.map((r) => toView(r, now))
    })

  const get = (tenantId: string, id: string) =>
    Effect.gen(function*() {
      const rows = yield* sql<Row>`SELECT * FROM backfills WHERE id = ${id} AND tenant_id = ${tenantId}`.pipe(orDie)
      const row = rows[0]
      if (row === undefined) return yield* new NotFound({ message: `no backfill ${id} in tenant ${tenantId}` })
      return toView(row, yield* Clock.currentTimeMillis)
    })

  const cancel = (tenantId: string, id: string) =>
    Effect.gen(function*() {
      const current = yield* get(tenantId, id)
      if (current.status !== "running") return yield* new Conflict({ message: `backfill ${id} is ${current.status} already; only a running backfill can be cancelled` })
      // The running page (if any) then fails its checkpoint and commits nothing; the workflow ends at its next step.
      const rows = yield* sql<{ id: string }>`
        UPDATE backfills SET status = 'cancelled', finished_at = now(), updated_at = now(), error = NULL
        WHERE id = ${id} AND status = 'running' RETURNING id`.pipe(orDie)
      if (rows.length === 0) return yield* new Conflict({ message: `backfill ${id} finished meanwhile; it was not cancelled` })
      return yield* get(tenantId, id)
    })

  // Belt and braces: a row inserted by a node that died before starting its workflow.
  // Starting an execution that exists joins it, so this is harmless for the others.
  const running = yield* sql<{ id: string }>`SELECT id FROM backfills WHERE status = 'running'`.pipe(Effect.orElseSucceed(() => []))
  for (const r of running) yield* launch(r.id).pipe(Effect.catchCause((c) => Effect.logWarning(`backfill ${r.id} could not be resumed`, c)))

  // Gauges, sampled from Postgres (a backfill runs on whichever node owns it).
  yield* Effect.forkScoped(
    sql<{ running: string; remaining: string | null }>`
      SELECT count(*) AS running, sum(GREATEST(total - done, 0)) AS remaining FROM backfills WHERE status = 'running'`.pipe(
      Effect.flatMap((rows) =>
        Effect.andThen(
          Metric.update(runningMetric, Number(rows[0]?.running ?? 0)),
          Metric.update(remainingMetric, Number(rows[0]?.remaining ?? 0))
        )
      ),
      Effect.catchCause(() => Effect.void),
      Effect.repeat(Schedule.spaced(Duration.seconds(5)))
    )
  )

  const all = (tenantId: string | undefined, status: BackfillStatus | undefined) =>
    Effect.gen(function*() {
      const rows = yield* sql<Row>`
        SELECT * FROM backfills WHERE (${tenantId ?? null}::text IS NULL OR tenant_id = ${tenantId ?? null})
          AND (${status ?? null}::text IS NULL OR status = ${status ?? null})
        ORDER BY started_at DESC, entity LIMIT 1000`.pipe(orDie)
      const now = yield* Clock.currentTimeMillis
      return rows.map((r) => toView(r, now))
    })

  const find = (tenantId: string | undefined, id: string) =>
    Effect.gen(function*() {
      const rows = yield* sql<Row>`SELECT * FROM backfills WHERE id = ${id} AND (${tenantId ?? null}::text IS NULL OR tenant_id = ${tenantId ?? null})`.pipe(orDie)
      const row = rows[0]
      if (row === undefined) return yield* new NotFound({ message: `no backfill ${id}${tenantId === undefined ? "" : ` in tenant ${tenantId}`}` })
      return toView(row, yield* Clock.currentTimeMillis)
    })

  return Backfills.of({
    start: (t, c, r) => withSql(start(t, c, r)),
    list,
    get,
    cancel,
    all,
    find
  })
})

/** The workflow registered with the engine, and the service (needs the cluster, the store, sessions, tenants). */
export const layer = Layer.effect(Backfills, service).pipe(Layer.provideMerge(workflowLayer))
