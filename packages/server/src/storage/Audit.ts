/**
 * The audit log: append-only, and hash-chained per tenant. Each row's hash
 * is SHA-256 over the previous row's hash and the row's own canonical JSON,
 * so changing, removing or reordering any row breaks every hash after it.
 */
import type { AuditEntry } from "@concord/reconciler/Ports"
import { Hash } from "@concord/core"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, nonEmpty } from "./Rows.ts"

export const GENESIS = "0".repeat(64)

export interface AuditRow {
  readonly tenant_id: string
  readonly seq: number | string
  readonly at: Date | string
  readonly connection_id: string | null
  readonly entity: string | null
  readonly record_id: string | null
  readonly action: string
  readonly actor: string
  readonly correlation_id: string | null
  readonly detail: unknown
  readonly prev_hash: string
  readonly hash: string
}

const iso = (at: Date | string): string => (typeof at === "string" ? new Date(at) : at).toISOString()

/** The hash of a row given its predecessor's hash. */
export const rowHash = (prevHash: string, row: Omit<AuditRow, "hash" | "prev_hash">): string =>
  Hash.sha256(prevHash + Hash.canonicalJson({
    tenant: row.tenant_id,
    seq: Number(row.seq),
    at: iso(row.at),
    connection: row.connection_id,
    entity: row.entity,
    record: row.record_id,
    action: row.action,
    actor: row.actor,
    correlation: row.correlation_id,
    detail: row.detail
  }))

/**
 * Appends entries for a tenant inside the caller's transaction: locks the
 * tenant's chain head, links each row to the previous one, moves the head.
 */
export const append = (tenantId: string, entries: ReadonlyArray<AuditEntry>, at: Date) =>
  Effect.gen(function*() {
    if (entries.length === 0) return
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (${tenantId}, 0, ${GENESIS}) ON CONFLICT DO NOTHING`
    const heads = yield* sql<{ seq: string; hash: string }>`SELECT seq, hash FROM audit_heads WHERE tenant_id = ${tenantId} FOR UPDATE`
    let seq = Number(heads[0]?.seq ?? 0)
    let prev = heads[0]?.hash ?? GENESIS
    const rows: Array<AuditRow> = []
    for (const e of entries) {
      seq++
      const detail = JSON.parse(JSON.stringify({ ...e.detail, ...(e.step === undefined ? {} : { step: e.step }) })) as unknown
      const row = {
        tenant_id: tenantId,
        seq,
        at,
        connection_id: e.connectionId ?? null,
        entity: e.entity ?? null,
        record_id: e.recordId ?? null,
        action: e.action,
        actor: e.actor,
        correlation_id: e.correlationId ?? null,
        detail
      }
      const hash = rowHash(prev, row)
      rows.push({ ...row, prev_hash: prev, hash })
      prev = hash
    }
    for (const part of chunks(rows, 12)) {
      yield* sql`INSERT INTO audit_log ${sql.insert(nonEmpty(part.map((r): Record<string, unknown> => ({ ...r, detail: JSON.stringify(r.detail) }))))}`
    }
    yield* sql`UPDATE audit_heads SET seq = ${seq}, hash = ${prev} WHERE tenant_id = ${tenantId}`
  })

export interface VerifyResult {
  readonly tenant: string
  readonly rows: number
  readonly ok: boolean
  /** The first row whose hash does not follow from the row before it. */
  readonly brokenAt?: { readonly seq: number; readonly reason: string }
}

/** Walks a tenant's chain from the start and reports the first broken link. */
export const verify = (tenantId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let prev = GENESIS
    let expectedSeq = 1
    let count = 0
    let after = 0
    for (;;) {
      const page = yield* sql<AuditRow>`
        SELECT tenant_id, seq, at, connection_id, entity, record_id, action, actor, correlation_id, detail, prev_hash, hash
        FROM audit_log WHERE tenant_id = ${tenantId} AND seq > ${after} ORDER BY seq LIMIT 5000`
      if (page.length === 0) break
      for (const row of page) {
        const seq = Number(row.seq)
        count++
        if (seq !== expectedSeq) {
          return { tenant: tenantId, rows: count, ok: false, brokenAt: { seq, reason: `expected row ${expectedSeq} next, found ${seq} (a row is missing)` } } satisfies VerifyResult
        }
        if (row.prev_hash !== prev) {
          return { tenant: tenantId, rows: count, ok: false, brokenAt: { seq, reason: "prev_hash does not match the previous row's hash" } } satisfies VerifyResult
        }
        const detail = typeof row.detail === "string" ? JSON.parse(row.detail) as unknown : row.detail
        if (rowHash(prev, { ...row, detail }) !== row.hash) {
          return { tenant: tenantId, rows: count, ok: false, brokenAt: { seq, reason: "row content does not match its hash (the row was changed)" } } satisfies VerifyResult
        }
        prev = row.hash
        expectedSeq++
        after = seq
      }
    }
    const head = yield* sql<{ seq: string; hash: string }>`SELECT seq, hash FROM audit_heads WHERE tenant_id = ${tenantId}`
    if (head[0] !== undefined && (Number(head[0].seq) !== expectedSeq - 1 || head[0].hash !== prev)) {
      return { tenant: tenantId, rows: count, ok: false, brokenAt: { seq: expectedSeq, reason: `the chain head says ${head[0].seq} rows; the last ${Number(head[0].seq) - (expectedSeq - 1)} are missing` } } satisfies VerifyResult
    }
    return { tenant: tenantId, rows: count, ok: true } satisfies VerifyResult
  })
