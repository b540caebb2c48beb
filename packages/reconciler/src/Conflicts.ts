/**
 * Deciding a conflict. A person picks the app's value, the provider's, or a
 * merged value; the decision is recorded, and the record is synced again at
 * once so the chosen value reaches both sides.
 *
 * The mechanism is the base: choosing "app" makes the base hold the
 * provider's value, so the next merge sees only the app as changed and pushes
 * its value; "provider" does the reverse; "merged" writes the value into the
 * app's record and then pushes it. No special write path exists, so the
 * decision goes through the same idempotent, audited pipeline as any change.
 */
import { Hash, Path } from "@concord/core"
import { Clock, Effect, Option, Schema } from "effect"
import type { ConflictEvent } from "./Events.ts"
import { subjects } from "./Events.ts"
import type { ConnectionInfo, ProviderSession } from "./Ports.ts"
import { SyncStore } from "./Ports.ts"
import { runBatch } from "./Sync.ts"
import type { Outcome } from "./Work.ts"

export const Resolution = Schema.Literals(["app", "provider", "merged"])
export type Resolution = typeof Resolution.Type

export class ConflictNotOpen extends Schema.TaggedError<ConflictNotOpen>()("ConflictNotOpen", {
  conflictId: Schema.String,
  status: Schema.String
}) {
  override get message(): string {
    return this.status === "missing" ? `conflict ${this.conflictId} does not exist` : `conflict ${this.conflictId} is already ${this.status}`
  }
}

type Json = Parameters<typeof Path.set>[0]

export const resolve = (
  connection: ConnectionInfo,
  session: ProviderSession | undefined,
  conflictId: string,
  resolution: Resolution,
  value: unknown,
  by: string
) =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const found = yield* store.conflict(conflictId)
    if (Option.isNone(found) || found.value.connectionId !== connection.id) {
      return yield* new ConflictNotOpen({ conflictId, status: "missing" })
    }
    const c = found.value
    if (c.status !== "open") return yield* new ConflictNotOpen({ conflictId, status: c.status })
    const at = new Date(yield* Clock.currentTimeMillis).toISOString()
    const bases = yield* store.bases(connection.id, c.entity, [c.recordId])
    const records = yield* store.records(connection.tenantId, c.entity, [c.recordId])
    const base = bases.get(c.recordId)
    const app = records.get(c.recordId)
    const segments = c.segments as Path.Path
    const wholeRecord = c.path === "(record)"

    const newBases = []
    const newRecords = []
    const unlink = []
    if (wholeRecord) {
      // The provider deleted a record the app changed.
      if (resolution === "provider" && app !== undefined) {
        newRecords.push({ entity: c.entity, recordId: c.recordId, data: app.data, hash: app.hash, deleted: true, origin: connection.provider })
      } else {
        unlink.push({ entity: c.entity, recordId: c.recordId })
      }
    } else if (base !== undefined) {
      const chosenBase = resolution === "provider" ? c.app : c.provider
      const data = Path.set(base.data as Json, segments, chosenBase as Json) as Record<string, unknown>
      newBases.push({ entity: c.entity, recordId: c.recordId, data, hash: Hash.contentHash(data) })
      if (resolution === "merged" && app !== undefined) {
        const merged = Path.set(app.data as unknown as Json, segments, value as Json) as Record<string, unknown>
        newRecords.push({ entity: c.entity, recordId: c.recordId, data: merged, hash: Hash.contentHash(merged), deleted: false, origin: "operator" })
      }
    }
    const event: ConflictEvent = {
      type: "conflict.resolved",
      conflictId,
      tenant: connection.tenantId,
      connectionId: connection.id,
      provider: connection.provider,
      entity: c.entity,
      recordId: c.recordId,
      path: c.path,
      resolution,
      occurredAt: at
    }
    yield* store.commit({
      tenantId: connection.tenantId,
      connectionId: connection.id,
      records: newRecords,
      links: [],
      bases: newBases,
      syncStates: [],
      conflicts: [],
      conflictScopes: [],
      audit: [{
        connectionId: connection.id,
        entity: c.entity,
        recordId: c.recordId,
        action: "conflict_resolved",
        actor: by,
        step: "resolve",
        detail: { conflictId, path: c.path, resolution, ...(resolution === "merged" ? { value } : {}) }
      }],
      events: [{ subject: subjects.conflicts(connection.tenantId, connection.provider), payload: event }],
      idempotency: [],
      operations: [],
      resolved: [{ id: conflictId, resolution, ...(resolution === "merged" ? { value } : {}), by }],
      unlink
    })
    // Sync the record now so the decision reaches both sides.
    if (session === undefined) return { conflictId, outcome: { _tag: "Done", status: "skipped" } as Outcome }
    const result = yield* runBatch(connection, session, [{ key: `resolve:${conflictId}`, entity: c.entity, recordId: c.recordId, source: "resync", correlationId: conflictId }])
    return { conflictId, outcome: result.outcomes.get(`resolve:${conflictId}`) ?? ({ _tag: "Done", status: "synced" } as Outcome) }
  })
