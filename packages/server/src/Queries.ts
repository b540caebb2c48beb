/**
 * Read side of the API: records with their sync status per connection,
 * conflicts, connection health, the audit log.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type ConflictView, NotFound, type RecordView } from "./api/Api.ts"

const iso = (d: Date | string | null): string | null => (d === null ? null : (typeof d === "string" ? new Date(d) : d).toISOString())

interface ConflictRow {
  readonly id: string
  readonly tenant_id: string
  readonly connection_id: string
  readonly entity: string
  readonly record_id: string
  readonly path: string
  readonly base: unknown
  readonly app: unknown
  readonly provider: unknown
  readonly status: string
  readonly resolution: string | null
  readonly resolved_value: unknown
  readonly opened_at: Date | string
  readonly resolved_at: Date | string | null
}

export class Queries extends Context.Service<Queries, {
  readonly record: (tenantId: string, entity: string, id: string) => Effect.Effect<RecordView, NotFound>
  readonly records: (tenantId: string, entity: string, limit: number, after: string | undefined) => Effect.Effect<{ items: ReadonlyArray<RecordView>; next: string | null }>
  readonly conflicts: (tenantId: string, status: string) => Effect.Effect<ReadonlyArray<ConflictView>>
  readonly conflict: (tenantId: string, id: string) => Effect.Effect<ConflictView, NotFound>
  readonly connectionHealth: (connectionId: string) => Effect.Effect<{
    records: { synced: number; conflict: number; error: number; skipped: number }
    openConflicts: number
    parked: number
    lastErrors: ReadonlyArray<{ entity: string; recordId: string; error: unknown; at: string }>
  }>
  readonly audit: (tenantId: string, filter: { entity?: string; recordId?: string; after?: number; limit?: number }) => Effect.Effect<ReadonlyArray<{
    seq: number
    at: string
    connectionId: string | null
    entity: string | null
    recordId: string | null
    action: string
    actor: string
    correlationId: string | null
    detail: unknown
    hash: string
  }>>
}>()("concord/server/Queries") {}

export const layer = Layer.effect(
  Queries,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const syncOf = (tenantId: string, entity: string, ids: ReadonlyArray<string>) =>
      ids.length === 0
        ? Effect.succeed([] as Array<{ record_id: string; connection_id: string; provider: string; external_id: string | null; provider_version: string | null; status: string | null; last_error: unknown; open: string }>)
        : sql<{ record_id: string; connection_id: string; provider: string; external_id: string | null; provider_version: string | null; status: string | null; last_error: unknown; open: string }>`
          SELECT r.record_id, c.id AS connection_id, c.provider, l.external_id, l.provider_version, s.status, s.last_error,
            (SELECT count(*) FROM conflicts k WHERE k.connection_id = c.id AND k.entity = r.entity AND k.record_id = r.record_id AND k.status = 'open') AS open
          FROM records r
          JOIN connections c ON c.tenant_id = r.tenant_id
          LEFT JOIN links l ON l.connection_id = c.id AND l.entity = r.entity AND l.record_id = r.record_id
          LEFT JOIN sync_state s ON s.connection_id = c.id AND s.entity = r.entity AND s.record_id = r.record_id
          WHERE r.tenant_id = ${tenantId} AND r.entity = ${entity} AND r.record_id IN ${sql.in(ids)}
          ORDER BY c.id`

    const view = (
      row: { entity: string; record_id: string; data: unknown; deleted: boolean; origin: string; updated_at: Date | string },
      sync: ReadonlyArray<{ record_id: string; connection_id: string; provider: string; external_id: string | null; provider_version: string | null; status: string | null; last_error: unknown; open: string }>
    ): RecordView => ({
      entity: row.entity,
      id: row.record_id,
      record: row.data,
      deleted: row.deleted,
      origin: row.origin,
      updatedAt: iso(row.updated_at) as string,
      sync: sync.filter((s) => s.record_id === row.record_id).map((s) => ({
        connectionId: s.connection_id,
        provider: s.provider,
        externalId: s.external_id,
        providerVersion: s.provider_version,
        status: s.status ?? "pending",
        lastError: s.last_error === null ? null : s.last_error,
        openConflicts: Number(s.open)
      }))
    })

    const conflictView = (r: ConflictRow, now: number): ConflictView => ({
      id: r.id,
      tenant: r.tenant_id,
      connectionId: r.connection_id,
      entity: r.entity,
      recordId: r.record_id,
      path: r.path,
      base: r.base ?? null,
      app: r.app ?? null,
      provider: r.provider ?? null,
      status: r.status,
      resolution: r.resolution,
      resolvedValue: r.resolved_value ?? null,
      openedAt: iso(r.opened_at) as string,
      resolvedAt: iso(r.resolved_at),
      ageSeconds: Math.max(0, Math.round((now - new Date(r.opened_at).getTime()) / 1000))
    })

    return Queries.of({
      record: (tenantId, entity, id) =>
        Effect.gen(function*() {
          const rows = yield* sql<{ entity: string; record_id: string; data: unknown; deleted: boolean; origin: string; updated_at: Date }>`
            SELECT entity, record_id, data, deleted, origin, updated_at FROM records WHERE tenant_id = ${tenantId} AND entity = ${entity} AND record_id = ${id}`.pipe(Effect.orDie)
          const row = rows[0]
          if (row === undefined) return yield* new NotFound({ message: `tenant ${tenantId} has no ${entity} ${id}` })
          return view(row, yield* syncOf(tenantId, entity, [id]).pipe(Effect.orDie))
        }),
      records: (tenantId, entity, limit, after) =>
        Effect.gen(function*() {
          const rows = yield* sql<{ entity: string; record_id: string; data: unknown; deleted: boolean; origin: string; updated_at: Date }>`
            SELECT entity, record_id, data, deleted, origin, updated_at FROM records
            WHERE tenant_id = ${tenantId} AND entity = ${entity} AND record_id > ${after ?? ""}
            ORDER BY record_id LIMIT ${limit + 1}`.pipe(Effect.orDie)
          const page = rows.slice(0, limit)
          const sync = yield* syncOf(tenantId, entity, page.map((r) => r.record_id)).pipe(Effect.orDie)
          return { items: page.map((r) => view(r, sync)), next: rows.length > limit ? (page.at(-1)?.record_id ?? null) : null }
        }),
      conflicts: (tenantId, status) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const rows = status === "all"
            ? yield* sql<ConflictRow>`SELECT * FROM conflicts WHERE tenant_id = ${tenantId} ORDER BY opened_at LIMIT 1000`.pipe(Effect.orDie)
            : yield* sql<ConflictRow>`SELECT * FROM conflicts WHERE tenant_id = ${tenantId} AND status = ${status} ORDER BY opened_at LIMIT 1000`.pipe(Effect.orDie)
          return rows.map((r) => conflictView(r, now))
        }),
      conflict: (tenantId, id) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const rows = yield* sql<ConflictRow>`SELECT * FROM conflicts WHERE tenant_id = ${tenantId} AND id = ${id}`.pipe(Effect.orDie)
          const row = rows[0]
          if (row === undefined) return yield* new NotFound({ message: `tenant ${tenantId} has no conflict ${id}` })
          return conflictView(row, now)
        }),
      connectionHealth: (connectionId) =>
        Effect.gen(function*() {
          const counts = yield* sql<{ status: string; n: string }>`SELECT status, count(*) AS n FROM sync_state WHERE connection_id = ${connectionId} GROUP BY status`.pipe(Effect.orDie)
          const open = yield* sql<{ n: string }>`SELECT count(*) AS n FROM conflicts WHERE connection_id = ${connectionId} AND status = 'open'`.pipe(Effect.orDie)
          const parked = yield* sql<{ n: string }>`SELECT count(*) AS n FROM parked WHERE connection_id = ${connectionId}`.pipe(Effect.orDie)
          const errors = yield* sql<{ entity: string; record_id: string; last_error: unknown; updated_at: Date }>`
            SELECT entity, record_id, last_error, updated_at FROM sync_state WHERE connection_id = ${connectionId} AND status = 'error'
            ORDER BY updated_at DESC LIMIT 10`.pipe(Effect.orDie)
          const n = (s: string) => Number(counts.find((c) => c.status === s)?.n ?? 0)
          return {
            records: { synced: n("synced"), conflict: n("conflict"), error: n("error"), skipped: n("skipped") },
            openConflicts: Number(open[0]?.n ?? 0),
            parked: Number(parked[0]?.n ?? 0),
            lastErrors: errors.map((e) => ({ entity: e.entity, recordId: e.record_id, error: e.last_error, at: iso(e.updated_at) as string }))
          }
        }),
      audit: (tenantId, filter) =>
        Effect.gen(function*() {
          const rows = yield* sql<{ seq: string; at: Date; connection_id: string | null; entity: string | null; record_id: string | null; action: string; actor: string; correlation_id: string | null; detail: unknown; hash: string }>`
            SELECT seq, at, connection_id, entity, record_id, action, actor, correlation_id, detail, hash FROM audit_log
            WHERE tenant_id = ${tenantId} AND seq > ${filter.after ?? 0}
              AND (${filter.entity ?? null}::text IS NULL OR entity = ${filter.entity ?? null})
              AND (${filter.recordId ?? null}::text IS NULL OR record_id = ${filter.recordId ?? null})
            ORDER BY seq LIMIT ${filter.limit ?? 100}`.pipe(Effect.orDie)
          return rows.map((r) => ({
            seq: Number(r.seq),
            at: iso(r.at) as string,
            connectionId: r.connection_id,
            entity: r.entity,
            recordId: r.record_id,
            action: r.action,
            actor: r.actor,
            correlationId: r.correlation_id,
            detail: r.detail,
            hash: r.hash
          }))
        })
    })
  })
)
