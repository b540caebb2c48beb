/**
 * The reconciler's `SyncStore` on Postgres.
 */
import { Config, type Canonical } from "@concord/core"
import {
  type AppRecord,
  type BackfillCheckpoint,
  type Base,
  type Commit,
  type ConnectionInfo,
  type ConnectionStatus,
  type EntityType,
  type Link,
  StoreError,
  type WriteIntent,
  SyncStore
} from "@concord/reconciler/Ports"
import { subjects } from "@concord/reconciler/Events"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import * as Audit from "./Audit.ts"
import { chunks, nonEmpty } from "./Rows.ts"

/** The deepest message of an error chain (Postgres's own words, not the driver's wrapper). */
export const rootMessage = (e: unknown): string => {
  let message = e instanceof Error ? e.message : String(e)
  let cur: unknown = e
  for (let i = 0; i < 6 && typeof cur === "object" && cur !== null && "cause" in cur; i++) {
    cur = (cur as { cause: unknown }).cause
    if (cur instanceof Error && cur.message !== "") message = cur.message
  }
  return message
}

const storeError = (operation: string) => (e: unknown) => new StoreError({ operation, reason: rootMessage(e) })


const decodeTenant = Schema.decodeUnknownSync(Config.TenantConfig)

interface ConnectionRow {
  readonly id: string
  readonly tenant_id: string
  readonly provider: string
  readonly account_id: string | null
  readonly base_url: string | null
  readonly status: ConnectionStatus
  readonly config: unknown
}

/** Reads a connection with its tenant's configuration. */
export const loadConnection = (connectionId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<ConnectionRow>`
      SELECT c.id, c.tenant_id, c.provider, c.account_id, c.base_url, c.status, t.config
      FROM connections c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = ${connectionId}`
    const row = rows[0]
    if (row === undefined) return Option.none<ConnectionInfo>()
    const tenant = decodeTenant(row.config)
    const config = tenant.connections.find((c) => c.id === row.id) ?? { id: row.id, provider: row.provider, entities: {} }
    return Option.some<ConnectionInfo>({
      id: row.id,
      tenantId: row.tenant_id,
      provider: row.provider,
      accountId: row.account_id ?? undefined,
      baseUrl: row.base_url ?? undefined,
      status: row.status,
      config,
      tenant
    })
  })

export const layer = Layer.effect(
  SyncStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const records = (tenantId: string, entity: EntityType, ids: ReadonlyArray<string>) =>
      sql<{ record_id: string; data: unknown; hash: string; deleted: boolean; app_seq: string; origin: string }>`
        SELECT record_id, data, hash, deleted, app_seq, origin FROM records
        WHERE tenant_id = ${tenantId} AND entity = ${entity} AND record_id IN ${sql.in(ids)}`.pipe(
        Effect.map((rows) =>
          new Map<string, AppRecord>(rows.map((r) => [r.record_id, {
            entity,
            recordId: r.record_id,
            data: r.data as Canonical.CanonicalRecord,
            hash: r.hash,
            deleted: r.deleted,
            appSeq: Number(r.app_seq),
            origin: r.origin
          }]))
        ),
        Effect.mapError(storeError("read records"))
      )

    const toLink = (entity: EntityType) => (r: LinkRow): Link => ({
      entity,
      recordId: r.record_id,
      externalId: r.external_id,
      version: r.provider_version,
      providerHash: r.provider_hash,
      providerDeleted: r.provider_deleted,
      providerUpdatedAt: r.provider_updated_at === null ? null : new Date(r.provider_updated_at).toISOString()
    })

    const links = (connectionId: string, entity: EntityType, ids: ReadonlyArray<string>) =>
      sql<LinkRow>`
        SELECT record_id, external_id, provider_version, provider_hash, provider_deleted, provider_updated_at FROM links
        WHERE connection_id = ${connectionId} AND entity = ${entity} AND record_id IN ${sql.in(ids)}`.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [r.record_id, toLink(entity)(r)]))),
        Effect.mapError(storeError("read links"))
      )

    const linksByExternalId = (connectionId: string, entity: EntityType, ids: ReadonlyArray<string>) =>
      sql<LinkRow>`
        SELECT record_id, external_id, provider_version, provider_hash, provider_deleted, provider_updated_at FROM links
        WHERE connection_id = ${connectionId} AND entity = ${entity} AND external_id IN ${sql.in(ids)}`.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [r.external_id, toLink(entity)(r)]))),
        Effect.mapError(storeError("read links"))
      )

    const bases = (connectionId: string, entity: EntityType, ids: ReadonlyArray<string>) =>
      sql<{ record_id: string; data: unknown; hash: string }>`
        SELECT record_id, data, hash FROM bases
        WHERE connection_id = ${connectionId} AND entity = ${entity} AND record_id IN ${sql.in(ids)}`.pipe(
        Effect.map((rows) =>
          new Map<string, Base>(rows.map((r) => [r.record_id, { entity, recordId: r.record_id, data: r.data as Record<string, unknown>, hash: r.hash }]))
        ),
        Effect.mapError(storeError("read bases"))
      )

    const openConflicts = (connectionId: string, entity: EntityType, ids: ReadonlyArray<string>) =>
      sql<{ id: string; record_id: string; path: string }>`
        SELECT id, record_id, path FROM conflicts
        WHERE connection_id = ${connectionId} AND entity = ${entity} AND record_id IN ${sql.in(ids)} AND status = 'open'`.pipe(
        Effect.map((rows) => rows.map((r) => ({ id: r.id, entity, recordId: r.record_id, path: r.path }))),
        Effect.mapError(storeError("read conflicts"))
      )

    // A key keeps the request it was first sent in (ON CONFLICT DO NOTHING): that is the one to replay.
    const recordIntents = (connectionId: string, intents: ReadonlyArray<WriteIntent>) =>
      Effect.forEach(chunks(intents, 7), (part) =>
        sql`INSERT INTO idempotency ${sql.insert(nonEmpty(part.map((i): Row => ({
          key: i.key,
          connection_id: connectionId,
          entity: i.entity,
          record_id: i.recordId,
          operation: i.operation,
          batch_key: i.batchKey ?? null,
          position: i.position ?? null,
          payload: i.payload === undefined ? null : JSON.stringify(i.payload)
        }))))} ON CONFLICT (key) DO NOTHING`, { discard: true }).pipe(Effect.mapError(storeError("record write intents")))

    type BatchRow = { batch_key: string; sent_at: Date | string; ops: ReadonlyArray<{ key: string; payload: unknown; entity: EntityType; recordId: string; answered: boolean }> }
    const toBatches = (rows: ReadonlyArray<BatchRow>) => rows.map((r) => ({ batchKey: r.batch_key, sentAt: new Date(r.sent_at).toISOString(), ops: r.ops }))

    // A request is replayed whole (answered creates included): that is what makes its key match.
    const unansweredBatches = (connectionId: string, keys: ReadonlyArray<string>) =>
      keys.length === 0
        ? Effect.succeed([])
        : sql<BatchRow>`
          SELECT i.batch_key, min(i.created_at) AS sent_at,
            json_agg(json_build_object('key', i.key, 'payload', i.payload, 'entity', i.entity, 'recordId', i.record_id,
              'answered', i.external_id IS NOT NULL OR i.answered_at IS NOT NULL) ORDER BY i.position) AS ops
          FROM idempotency i
          WHERE i.connection_id = ${connectionId} AND i.batch_key IN (
            SELECT batch_key FROM idempotency
            WHERE connection_id = ${connectionId} AND key IN ${sql.in(keys)} AND external_id IS NULL AND answered_at IS NULL AND batch_key IS NOT NULL)
          GROUP BY i.batch_key ORDER BY min(i.created_at)`.pipe(
          Effect.map(toBatches),
          Effect.mapError(storeError("read unanswered requests"))
        )

    const unansweredCreatesOf = (connectionId: string, entity: EntityType, recordIds: ReadonlyArray<string>) =>
      recordIds.length === 0
        ? Effect.succeed([])
        : sql<BatchRow>`
          SELECT i.batch_key, min(i.created_at) AS sent_at,
            json_agg(json_build_object('key', i.key, 'payload', i.payload, 'entity', i.entity, 'recordId', i.record_id,
              'answered', i.external_id IS NOT NULL OR i.answered_at IS NOT NULL) ORDER BY i.position) AS ops
          FROM idempotency i
          WHERE i.connection_id = ${connectionId} AND i.batch_key IN (
            SELECT batch_key FROM idempotency
            WHERE connection_id = ${connectionId} AND entity = ${entity} AND record_id IN ${sql.in(recordIds)}
              AND operation = 'create' AND external_id IS NULL AND answered_at IS NULL AND batch_key IS NOT NULL)
          GROUP BY i.batch_key ORDER BY min(i.created_at)`.pipe(
          Effect.map(toBatches),
          Effect.mapError(storeError("read unanswered creates"))
        )

    const unansweredCreates = (connectionId: string, entity: string, since: Date) =>
      sql<{ n: string }>`
        SELECT count(*) AS n FROM idempotency i
        WHERE i.connection_id = ${connectionId} AND i.entity = ${entity} AND i.operation = 'create'
          AND i.external_id IS NULL AND i.answered_at IS NULL AND i.batch_key IS NOT NULL AND i.created_at > ${since}
          -- a record a later create (another key: its target changed) did link is no longer waiting
          AND NOT EXISTS (SELECT 1 FROM links l WHERE l.connection_id = i.connection_id AND l.entity = i.entity AND l.record_id = i.record_id)`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        Effect.mapError(storeError("count unanswered creates"))
      )

    const commit = (c: Commit) =>
      Effect.gen(function*() {
        const now = new Date(yield* Clock.currentTimeMillis)
        // App records: an app change applies only when newer than the stored one. One statement
        // per kind, one row per record (a multi-row upsert may not touch a row twice).
        const seqRecords = [...new Map(c.records.filter((r) => r.appSeq !== undefined)
          .sort((a, b) => (a.appSeq ?? 0) - (b.appSeq ?? 0))
          .map((r) => [`${r.entity}|${r.recordId}`, r])).values()]
        for (const part of chunks(seqRecords, 9)) {
          yield* sql`
            INSERT INTO records ${sql.insert(nonEmpty(part.map((r): Row => ({
              tenant_id: c.tenantId,
              entity: r.entity,
              record_id: r.recordId,
              data: JSON.stringify(r.data),
              hash: r.hash,
              deleted: r.deleted,
              app_seq: r.appSeq,
              origin: r.origin,
              updated_at: now
            }))))}
            ON CONFLICT (tenant_id, entity, record_id) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
              deleted = EXCLUDED.deleted, app_seq = EXCLUDED.app_seq, origin = EXCLUDED.origin, updated_at = EXCLUDED.updated_at
            WHERE records.app_seq < EXCLUDED.app_seq`
        }
        const plainRecords = [...new Map(c.records.filter((r) => r.appSeq === undefined).map((r) => [`${r.entity}|${r.recordId}`, r])).values()]
        for (const part of chunks(plainRecords, 8)) {
          yield* sql`
            INSERT INTO records ${sql.insert(nonEmpty(part.map((r): Row => ({
              tenant_id: c.tenantId,
              entity: r.entity,
              record_id: r.recordId,
              data: JSON.stringify(r.data),
              hash: r.hash,
              deleted: r.deleted,
              origin: r.origin,
              updated_at: now
            }))))}
            ON CONFLICT (tenant_id, entity, record_id) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
              deleted = EXCLUDED.deleted, origin = EXCLUDED.origin, updated_at = EXCLUDED.updated_at`
        }
        const links = [...new Map(c.links.map((l) => [`${l.entity}|${l.recordId}`, l])).values()]
        for (const part of chunks(links, 9)) {
          yield* sql`
            INSERT INTO links ${sql.insert(nonEmpty(part.map((l): Row => ({
              connection_id: c.connectionId,
              entity: l.entity,
              record_id: l.recordId,
              external_id: l.externalId,
              provider_version: l.version,
              provider_hash: l.providerHash,
              provider_deleted: l.providerDeleted,
              provider_updated_at: l.providerUpdatedAt === null ? null : new Date(l.providerUpdatedAt),
              updated_at: now
            }))))}
            ON CONFLICT (connection_id, entity, record_id) DO UPDATE SET external_id = EXCLUDED.external_id,
              provider_version = EXCLUDED.provider_version, provider_hash = EXCLUDED.provider_hash,
              provider_deleted = EXCLUDED.provider_deleted, provider_updated_at = EXCLUDED.provider_updated_at,
              updated_at = EXCLUDED.updated_at`
        }
        if (c.bases.length > 0) {
          // One row per record (a multi-row upsert may not touch a row twice).
          const unique = [...new Map(c.bases.map((b) => [`${b.entity}|${b.recordId}`, b])).values()]
          for (const part of chunks(unique, 6)) yield* sql`
            INSERT INTO bases ${sql.insert(nonEmpty(part.map((b): Row => ({
              connection_id: c.connectionId,
              entity: b.entity,
              record_id: b.recordId,
              data: JSON.stringify(b.data),
              hash: b.hash,
              updated_at: now
            }))))}
            ON CONFLICT (connection_id, entity, record_id) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
              version = bases.version + 1, updated_at = EXCLUDED.updated_at`
        }
        if (c.syncStates.length > 0) {
          const unique = new Map(c.syncStates.map((s) => [`${s.entity}|${s.recordId}`, s]))
          for (const part of chunks([...unique.values()], 6)) yield* sql`
            INSERT INTO sync_state ${sql.insert(nonEmpty(part.map((s): Row => ({
              connection_id: c.connectionId,
              entity: s.entity,
              record_id: s.recordId,
              status: s.status,
              last_error: s.error === undefined ? null : JSON.stringify(s.error),
              updated_at: now
            }))))}
            ON CONFLICT (connection_id, entity, record_id) DO UPDATE SET status = EXCLUDED.status,
              last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at`
        }
        // Conflicts: refresh the open ones, open new ones, supersede those the merge no longer sees.
        const conflictIds = new Map<string, string>()
        for (const scope of c.conflictScopes) {
          yield* sql`
            UPDATE conflicts SET status = 'superseded', resolved_at = ${now}
            WHERE connection_id = ${c.connectionId} AND entity = ${scope.entity} AND record_id = ${scope.recordId}
              AND status = 'open' AND NOT (path = ANY(${scope.openPaths as Array<string>}))`
        }
        for (const k of c.conflicts) {
          const rows = yield* sql<{ id: string }>`
            INSERT INTO conflicts (id, tenant_id, connection_id, entity, record_id, path, segments, base, app, provider, opened_at)
            VALUES (${`cf_${randomUUID()}`}, ${c.tenantId}, ${c.connectionId}, ${k.entity}, ${k.recordId}, ${k.path},
              ${JSON.stringify(k.segments)}, ${jsonOrNull(k.base)}, ${jsonOrNull(k.app)}, ${jsonOrNull(k.provider)}, ${now})
            ON CONFLICT (connection_id, entity, record_id, path) WHERE status = 'open'
            DO UPDATE SET base = EXCLUDED.base, app = EXCLUDED.app, provider = EXCLUDED.provider
            RETURNING id`
          if (rows[0] !== undefined) conflictIds.set(`${k.entity}|${k.recordId}|${k.path}`, rows[0].id)
        }
        yield* Audit.append(c.tenantId, c.audit, now)
        for (const part of chunks(c.events, 3)) {
          yield* sql`INSERT INTO outbox ${sql.insert(nonEmpty(part.map((e): Row => {
            const p = e.payload as { type?: string; entity?: string; recordId?: string; path?: string; conflictId?: string }
            const conflictId = p.type === "conflict.opened" ? conflictIds.get(`${p.entity}|${p.recordId}|${p.path}`) : undefined
            return {
              subject: e.subject,
              payload: JSON.stringify(conflictId === undefined ? e.payload : { ...p, conflictId }),
              created_at: now
            }
          })))}`
        }
        const keys = [...new Map(c.idempotency.map((i) => [i.key, i])).values()]
        for (const part of chunks(keys, 7)) {
          yield* sql`
            INSERT INTO idempotency ${sql.insert(nonEmpty(part.map((i): Row => ({
              key: i.key,
              connection_id: c.connectionId,
              entity: i.entity,
              record_id: i.recordId,
              operation: i.operation,
              external_id: i.externalId ?? null,
              provider_version: i.version ?? null,
              answered_at: now
            }))))}
            ON CONFLICT (key) DO UPDATE SET external_id = coalesce(EXCLUDED.external_id, idempotency.external_id),
              provider_version = coalesce(EXCLUDED.provider_version, idempotency.provider_version), answered_at = EXCLUDED.answered_at`
        }
        const ops = [...new Map(c.operations.map((o) => [`${o.operationId}|${o.entity}|${o.recordId}`, o])).values()]
        for (const part of chunks(ops, 7)) {
          yield* sql`
            INSERT INTO operation_items ${sql.insert(nonEmpty(part.map((o): Row => ({
              operation_id: o.operationId,
              connection_id: c.connectionId,
              entity: o.entity,
              record_id: o.recordId,
              status: o.status,
              detail: jsonOrNull(o.detail),
              updated_at: now
            }))))}
            ON CONFLICT (operation_id, connection_id, entity, record_id) DO UPDATE SET status = EXCLUDED.status,
              detail = EXCLUDED.detail, updated_at = EXCLUDED.updated_at`
        }
        for (const r of c.resolved ?? []) {
          yield* sql`
            UPDATE conflicts SET status = 'resolved', resolution = ${r.resolution}, resolved_value = ${jsonOrNull(r.value)},
              resolved_by = ${r.by}, resolved_at = ${now}
            WHERE id = ${r.id} AND status = 'open'`
        }
        for (const u of c.unlink ?? []) {
          yield* sql`DELETE FROM links WHERE connection_id = ${c.connectionId} AND entity = ${u.entity} AND record_id = ${u.recordId}`
          yield* sql`DELETE FROM bases WHERE connection_id = ${c.connectionId} AND entity = ${u.entity} AND record_id = ${u.recordId}`
        }
        for (const p of c.parked ?? []) {
          const key = p.recordId !== undefined ? `r:${p.recordId}` : `x:${p.externalId ?? ""}`
          yield* sql`
            INSERT INTO parked (connection_id, entity, key, record_id, external_id, operation_ids, parked_at)
            VALUES (${c.connectionId}, ${p.entity}, ${key}, ${p.recordId ?? null}, ${p.externalId ?? null}, ${JSON.stringify(p.operationIds ?? [])}, ${now})
            ON CONFLICT (connection_id, entity, key) DO UPDATE SET operation_ids = parked.operation_ids || EXCLUDED.operation_ids`
        }
        if (c.backfill !== undefined) yield* checkpoint(c.backfill, now)
        if (c.events.length > 0) yield* sql`SELECT pg_notify('concord_outbox', '')`
      }).pipe(sql.withTransaction, Effect.provideService(SqlClient.SqlClient, sql), Effect.mapError(storeError("commit")))

    /** A backfill page's cursor and counters; refused (rolling the page back) unless the backfill still waits for exactly this page. */
    const checkpoint = (b: BackfillCheckpoint, now: Date) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ id: string }>`
          UPDATE backfills SET pages = pages + 1, cursor = ${b.cursor ?? null},
            done = done + ${b.done}, imported = imported + ${b.imported}, skipped = skipped + ${b.skipped}, failed = failed + ${b.failed},
            status = ${b.cursor === undefined ? "completed" : "running"},
            finished_at = ${b.cursor === undefined ? now : null},
            rate = (done + ${b.done}) / GREATEST(EXTRACT(EPOCH FROM (${now}::timestamptz - started_at)), 0.001),
            error = NULL, updated_at = ${now}
          WHERE id = ${b.backfillId} AND pages = ${b.page} AND status = 'running'
          RETURNING id`
        if (rows.length === 0) {
          return yield* Effect.fail(new StoreError({ operation: "backfill checkpoint", reason: `backfill ${b.backfillId} is not waiting for page ${b.page + 1} any more (cancelled, or that page was committed already)` }))
        }
      })

    const setConnectionStatus = (connectionId: string, status: ConnectionStatus, reason: string | undefined) =>
      Effect.gen(function*() {
        const now = new Date(yield* Clock.currentTimeMillis)
        const rows = yield* sql<{ tenant_id: string; provider: string; status: string }>`
          UPDATE connections SET status = ${status}, status_reason = ${reason ?? null}, updated_at = ${now}
          WHERE id = ${connectionId} RETURNING tenant_id, provider, (SELECT status FROM connections WHERE id = ${connectionId}) AS status`
        const row = rows[0]
        if (row === undefined) return
        const type = status === "needs_reauth" ? "connection.needs_reauth"
          : status === "paused" ? "connection.paused"
          : status === "active" ? "connection.active"
          : undefined
        if (type !== undefined) {
          yield* sql`INSERT INTO outbox (subject, payload, created_at) VALUES (${subjects.health(row.tenant_id, row.provider)}, ${JSON.stringify({
            type,
            tenant: row.tenant_id,
            connectionId,
            provider: row.provider,
            ...(reason === undefined ? {} : { reason }),
            occurredAt: now.toISOString()
          })}, ${now})`
          yield* sql`SELECT pg_notify('concord_outbox', '')`
        }
        yield* Audit.append(row.tenant_id, [{
          connectionId,
          action: "connection_status",
          actor: "system",
          detail: { status, ...(reason === undefined ? {} : { reason }) }
        }], now)
      }).pipe(sql.withTransaction, Effect.provideService(SqlClient.SqlClient, sql), Effect.mapError(storeError("set connection status")))

    const conflict = (conflictId: string) =>
      sql<{ id: string; tenant_id: string; connection_id: string; entity: EntityType; record_id: string; path: string; segments: unknown; base: unknown; app: unknown; provider: unknown; status: "open" | "resolved" | "superseded" }>`
        SELECT id, tenant_id, connection_id, entity, record_id, path, segments, base, app, provider, status FROM conflicts WHERE id = ${conflictId}`.pipe(
        Effect.map((rows) => Option.fromNullishOr(rows[0]).pipe(Option.map((r) => ({
          id: r.id,
          tenantId: r.tenant_id,
          connectionId: r.connection_id,
          entity: r.entity,
          recordId: r.record_id,
          path: r.path,
          segments: r.segments as ReadonlyArray<unknown>,
          base: r.base,
          app: r.app,
          provider: r.provider,
          status: r.status
        })))),
        Effect.mapError(storeError("read conflict"))
      )

    const unpark = (connectionId: string) =>
      sql<{ entity: EntityType; record_id: string | null; external_id: string | null; operation_ids: unknown }>`
        DELETE FROM parked WHERE connection_id = ${connectionId} RETURNING entity, record_id, external_id, operation_ids`.pipe(
        Effect.map((rows) => rows.map((r) => {
          const ops = r.operation_ids as ReadonlyArray<string> | null
          return {
            entity: r.entity,
            ...(r.record_id === null ? {} : { recordId: r.record_id }),
            ...(r.external_id === null ? {} : { externalId: r.external_id }),
            ...(ops === null || ops.length === 0 ? {} : { operationIds: [...new Set(ops)] })
          }
        })),
        Effect.mapError(storeError("unpark"))
      )

    const cursor = (connectionId: string, name: string) =>
      sql<{ cursor: string }>`SELECT cursor FROM sync_cursors WHERE connection_id = ${connectionId} AND name = ${name}`.pipe(
        Effect.map((rows) => Option.fromNullishOr(rows[0]?.cursor)),
        Effect.mapError(storeError("read cursor"))
      )

    const setCursor = (connectionId: string, name: string, value: string) =>
      sql`
        INSERT INTO sync_cursors (connection_id, name, cursor, updated_at) VALUES (${connectionId}, ${name}, ${value}, now())
        ON CONFLICT (connection_id, name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("write cursor"))
      )

    const guard = <A, E, R>(ids: ReadonlyArray<string>, empty: A, effect: Effect.Effect<A, E, R>) =>
      ids.length === 0 ? Effect.succeed(empty) : effect

    return SyncStore.of({
      connection: (id) => loadConnection(id).pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.mapError(storeError("read connection"))),
      records: (t, e, ids) => guard(ids, new Map(), records(t, e, ids)),
      links: (c, e, ids) => guard(ids, new Map(), links(c, e, ids)),
      linksByExternalId: (c, e, ids) => guard(ids, new Map(), linksByExternalId(c, e, ids)),
      bases: (c, e, ids) => guard(ids, new Map(), bases(c, e, ids)),
      openConflicts: (c, e, ids) => guard(ids, [], openConflicts(c, e, ids)),
      conflict,
      recordIntents,
      unansweredBatches,
      unansweredCreatesOf,
      unansweredCreates,
      commit,
      setConnectionStatus,
      unpark,
      cursor,
      setCursor
    })
  })
)

type Row = Record<string, unknown>

interface LinkRow {
  readonly record_id: string
  readonly external_id: string
  readonly provider_version: string
  readonly provider_hash: string | null
  readonly provider_deleted: boolean
  readonly provider_updated_at: Date | string | null
}

const jsonOrNull = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v))
