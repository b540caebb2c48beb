/**
 * App changes: records pushed by the app and POS/payment transactions posted
 * through the GL rules. Everything is validated up front (422 naming every
 * bad field, nothing stored); a valid change is published to `CONCORD_IN`
 * once per connection that syncs the entity, and completion is tracked by an
 * operation id.
 */
import { Canonical, Hash, Ledger, Validation } from "@concord/core"
import { Clock, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { type Forbidden, NotFound, type OperationView, Unavailable, Unprocessable } from "./api/Api.ts"
import { Ingest } from "./nats/Ingest.ts"
import * as Audit from "./storage/Audit.ts"
import { Tenants } from "./Tenants.ts"

export interface AcceptedChange {
  readonly operationId: string
  readonly status: "accepted" | "succeeded"
  readonly entity: string
  readonly recordId: string
  readonly connections: ReadonlyArray<string>
  readonly rule?: string
  readonly link: string
}

const decodeTransaction = Validation.decode(Ledger.Transaction, "transaction")

export class Changes extends Context.Service<Changes, {
  readonly putRecord: (tenantId: string, entity: Canonical.EntityType, id: string, body: unknown) => Effect.Effect<AcceptedChange, Unprocessable | NotFound | Unavailable>
  readonly deleteRecord: (tenantId: string, entity: Canonical.EntityType, id: string) => Effect.Effect<AcceptedChange, NotFound | Unavailable>
  readonly postTransaction: (tenantId: string, body: unknown) => Effect.Effect<AcceptedChange, Unprocessable | NotFound | Unavailable>
  readonly operation: (id: string, tenantId: string | undefined) => Effect.Effect<OperationView, NotFound | Forbidden>
}>()("concord/server/Changes") {}

export const layer = Layer.effect(
  Changes,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tenants = yield* Tenants
    const ingest = yield* Ingest

    /** Publishes an app change to every connection that syncs the entity. */
    const publish = (
      tenantId: string,
      entity: Canonical.EntityType,
      recordId: string,
      record: unknown | undefined,
      kind: string,
      extra: { readonly rule?: string } = {}
    ) =>
      Effect.gen(function*() {
        const config = yield* tenants.config(tenantId)
        const targets = config.connections.filter((c) => c.entities[entity] !== undefined)
        const operationId = `op_${randomUUID()}`
        const at = new Date(yield* Clock.currentTimeMillis).toISOString()
        if (targets.length === 0) {
          // Nothing syncs this entity yet: keep the app's state; a connection added later picks it up.
          const now = new Date(at)
          yield* Effect.gen(function*() {
            if (record === undefined) {
              yield* sql`UPDATE records SET deleted = true, updated_at = ${now} WHERE tenant_id = ${tenantId} AND entity = ${entity} AND record_id = ${recordId}`
            } else {
              yield* sql`
                INSERT INTO records (tenant_id, entity, record_id, data, hash, deleted, origin, updated_at)
                VALUES (${tenantId}, ${entity}, ${recordId}, ${JSON.stringify(record)}, ${Hash.contentHash(record)}, false, 'app', ${now})
                ON CONFLICT (tenant_id, entity, record_id) DO UPDATE SET data = EXCLUDED.data, hash = EXCLUDED.hash,
                  deleted = false, origin = 'app', updated_at = EXCLUDED.updated_at`
            }
            yield* sql`INSERT INTO operations (id, tenant_id, kind, status, expected) VALUES (${operationId}, ${tenantId}, ${kind}, 'succeeded', 0)`
            yield* Audit.append(tenantId, [{ entity, recordId, action: record === undefined ? "app_delete" : "app_change", actor: "app", correlationId: operationId, detail: { connections: [] } }], now)
          }).pipe(sql.withTransaction, Effect.provideService(SqlClient.SqlClient, sql), Effect.orDie)
          return { operationId, status: "succeeded", entity, recordId, connections: [], ...extra, link: `/v1/operations/${operationId}` } satisfies AcceptedChange
        }
        yield* sql`INSERT INTO operations (id, tenant_id, kind, status, expected, detail) VALUES (${operationId}, ${tenantId}, ${kind}, 'accepted', ${targets.length}, ${JSON.stringify({ entity, recordId, ...extra })})`.pipe(Effect.orDie)
        for (const c of targets) {
          yield* ingest.publish(c.provider, "app", {
            kind: "app_change",
            tenant: tenantId,
            connectionId: c.id,
            entity,
            recordId,
            ...(record === undefined ? { deleted: true } : { record }),
            operationId,
            at
          }).pipe(Effect.mapError((e) => new Unavailable({ message: e.message })))
        }
        return { operationId, status: "accepted", entity, recordId, connections: targets.map((c) => c.id), ...extra, link: `/v1/operations/${operationId}` } satisfies AcceptedChange
      })

    const putRecord = (tenantId: string, entity: Canonical.EntityType, id: string, body: unknown) =>
      Effect.gen(function*() {
        if (typeof body !== "object" || body === null || Array.isArray(body)) {
          return yield* new Unprocessable({ message: "the body must be a JSON object: the record", issues: [{ path: "", message: "Expected an object" }] })
        }
        const input = { entity, id, schemaVersion: 1, ...(body as Record<string, unknown>) }
        const issues: Array<{ path: string; message: string }> = []
        if (input.entity !== entity) issues.push({ path: "entity", message: `the body is a ${String(input.entity)}, but the URL says ${entity}` })
        if (input.id !== id) issues.push({ path: "id", message: `the body's id is ${JSON.stringify(input.id)}, but the URL says ${id}` })
        if (issues.length > 0) return yield* new Unprocessable({ message: `${entity} ${id} is invalid`, issues })
        const decoded = yield* Canonical.decodeEntity(entity, `${entity} ${id}`)(input).pipe(
          Effect.mapError((e) => new Unprocessable({ message: e.message, issues: e.issues }))
        )
        return yield* publish(tenantId, entity, id, Canonical.toJson(decoded as Canonical.CanonicalRecord), "record.put")
      })

    const deleteRecord = (tenantId: string, entity: Canonical.EntityType, id: string) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM records WHERE tenant_id = ${tenantId} AND entity = ${entity} AND record_id = ${id}`.pipe(Effect.orDie)
        if (Number(rows[0]?.n ?? 0) === 0) return yield* new NotFound({ message: `tenant ${tenantId} has no ${entity} ${id}` })
        return yield* publish(tenantId, entity, id, undefined, "record.delete")
      })

    const postTransaction = (tenantId: string, body: unknown) =>
      Effect.gen(function*() {
        const txn = yield* decodeTransaction(body).pipe(Effect.mapError((e) => new Unprocessable({ message: e.message, issues: e.issues })))
        const config = yield* tenants.config(tenantId)
        const posted = Ledger.post(config.glRules ?? [], txn)
        if (posted._tag === "Err") {
          return yield* new Unprocessable({
            message: posted.error.message,
            issues: [{ path: posted.error.missing === "rule" ? "glRules" : `glRules[${posted.error.rule ?? ""}].${posted.error.missing}`, message: posted.error.description }]
          })
        }
        return yield* publish(tenantId, posted.record.entity, posted.record.id, posted.record, "transaction", { rule: posted.rule })
      })

    const operation = (id: string, tenantId: string | undefined) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ id: string; tenant_id: string; kind: string; status: string; expected: number; created_at: Date | string }>`
          SELECT id, tenant_id, kind, status, expected, created_at FROM operations WHERE id = ${id}`.pipe(Effect.orDie)
        const op = rows[0]
        if (op === undefined) return yield* new NotFound({ message: `operation ${id} does not exist` })
        if (tenantId !== undefined && op.tenant_id !== tenantId) return yield* new NotFound({ message: `operation ${id} does not exist` })
        const items = yield* sql<{ connection_id: string; entity: string; record_id: string; status: string; detail: unknown }>`
          SELECT connection_id, entity, record_id, status, detail FROM operation_items WHERE operation_id = ${id} ORDER BY connection_id`.pipe(Effect.orDie)
        const failed = items.filter((i) => i.status === "failed").length
        const conflicts = items.filter((i) => i.status === "conflict").length
        const done = items.length
        const status: OperationView["status"] = op.status === "succeeded" && Number(op.expected) === 0
          ? "succeeded"
          : done < Number(op.expected) ? "accepted" : failed > 0 ? "failed" : conflicts > 0 ? "conflict" : "succeeded"
        return {
          id: op.id,
          tenant: op.tenant_id,
          kind: op.kind,
          status,
          expected: Number(op.expected),
          done,
          failed,
          items: items.map((i) => ({
            connectionId: i.connection_id,
            entity: i.entity,
            recordId: i.record_id,
            status: i.status,
            detail: i.detail ?? null
          })),
          createdAt: (typeof op.created_at === "string" ? new Date(op.created_at) : op.created_at).toISOString()
        } satisfies OperationView
      })

    return Changes.of({ putRecord, deleteRecord, postTransaction, operation })
  })
)

