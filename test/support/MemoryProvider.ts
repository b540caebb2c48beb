/**
 * An in-process provider for pipeline tests: every canonical entity, every
 * field, versions that bump on each write, stale writes refused, idempotency
 * keys honoured, and an "accountant" that edits and deletes records. It is a
 * test double of a provider API, not of Postgres or NATS.
 */
import { Canonical } from "@concord/core"
import { Errors, type Provider } from "@concord/providers"
import { Effect, Redacted, Stream } from "effect"

type Obj = Record<string, unknown>

interface Stored {
  record: Obj
  version: number
  updatedAt: string
  deleted: boolean
}

export interface MemoryProviderOptions {
  readonly id?: string
  /** Fields per entity the provider stores (default: every canonical field). */
  readonly fields?: Partial<Record<Canonical.EntityType, ReadonlyArray<string>>>
  readonly batchSize?: number
  /**
   * "operation" (default): each operation's idempotency key is remembered.
   * "request": like QuickBooks' requestid and Xero's Idempotency-Key on a
   * batch, only a whole request with the same keys in the same order is
   * recognised; the same create in another request is created again.
   */
  readonly idempotency?: "operation" | "request"
  /** The provider sends webhooks for every entity (default true); false: changes are found by polling only. */
  readonly webhooks?: boolean
  /** The provider can list changes since a time (default true); false: a reconciliation reads each record it doubts again. */
  readonly changeFeed?: boolean
  /** Operations the provider refuses (a validation error, a duplicate name): the answer for that operation. */
  readonly refuse?: (op: Provider.WriteOp) => Errors.ProviderError | undefined
}

const allFields = (e: Canonical.EntityType): ReadonlyArray<string> =>
  Object.keys((Canonical.schemas[e] as unknown as { fields: Obj }).fields)

export const makeMemoryProvider = (options: MemoryProviderOptions = {}) => {
  const id = options.id ?? "memory"
  const data = new Map<string, Map<string, Stored>>()
  const idempotency = new Map<string, Provider.WriteResult>()
  const requests = new Map<string, ReadonlyArray<Provider.WriteResult>>()
  let nextId = 1
  let clock = Date.parse("2026-01-01T00:00:00Z")
  const stats = { writes: 0, reads: 0, creates: 0, updates: 0, stale: 0, idempotentReplays: 0 }
  const failNext: Array<Errors.ProviderError> = []

  const table = (entity: string) => {
    let t = data.get(entity)
    if (t === undefined) {
      t = new Map()
      data.set(entity, t)
    }
    return t
  }
  const tick = () => new Date((clock += 1000)).toISOString()

  const toRecord = (entity: Canonical.EntityType, externalId: string, s: Stored): Provider.ProviderRecord => ({
    entity,
    externalId,
    version: String(s.version),
    updatedAt: s.updatedAt,
    record: { ...s.record, id: externalId } as unknown as Canonical.CanonicalRecord
  })

  const keep = (entity: Canonical.EntityType, record: Obj): Obj => {
    const fields = options.fields?.[entity] ?? allFields(entity)
    const out: Obj = {}
    for (const f of fields) if (record[f] !== undefined) out[f] = record[f]
    return { ...out, entity, schemaVersion: 1 }
  }

  const capabilities = (entity: Canonical.EntityType): Provider.EntityCapabilities => ({
    read: true,
    create: true,
    update: true,
    remove: "delete",
    webhooks: options.webhooks ?? true,
    changeFeed: options.changeFeed ?? true,
    batchSize: options.batchSize ?? 30,
    idempotency: true,
    fields: options.fields?.[entity] ?? allFields(entity),
    customFields: true
  })

  const client = (connectionId: string): Provider.ProviderClient => {
    const notFound = (entity: string, externalId: string) => new Errors.NotFound({ provider: id, connectionId, entity, externalId })
    const writeOne = (op: Provider.WriteOp): Provider.WriteResult => {
      const replay = idempotency.get(op.idempotencyKey)
      if (replay !== undefined) {
        stats.idempotentReplays++
        return replay
      }
      const t = table(op.entity)
      let result: Provider.WriteResult
      const refused = options.refuse?.(op)
      if (refused !== undefined) {
        result = { _tag: "Failed", error: refused }
      } else if (op._tag === "Create") {
        const externalId = String(nextId++)
        const s: Stored = { record: keep(op.entity, op.record as unknown as Obj), version: 0, updatedAt: tick(), deleted: false }
        t.set(externalId, s)
        stats.creates++
        result = { _tag: "Written", record: toRecord(op.entity, externalId, s) }
      } else {
        const s = t.get(op.externalId)
        if (s === undefined || s.deleted) return { _tag: "Failed", error: notFound(op.entity, op.externalId) }
        if (String(s.version) !== op.version) {
          stats.stale++
          return { _tag: "Failed", error: new Errors.StaleVersion({ provider: id, connectionId, entity: op.entity, externalId: op.externalId, sentVersion: op.version, currentVersion: String(s.version) }) }
        }
        if (op._tag === "Remove") {
          s.deleted = true
          s.version++
          s.updatedAt = tick()
          result = { _tag: "Removed", entity: op.entity, externalId: op.externalId }
        } else {
          s.record = keep(op.entity, op.record as unknown as Obj)
          s.version++
          s.updatedAt = tick()
          stats.updates++
          result = { _tag: "Written", record: toRecord(op.entity, op.externalId, s) }
        }
      }
      idempotency.set(op.idempotencyKey, result)
      return result
    }
    return {
      provider: id,
      connectionId,
      list: (entity) =>
        Stream.fromIterable([...table(entity)].filter(([, s]) => !s.deleted).map(([x, s]) => toRecord(entity, x, s))),
      listPage: (entity, options) =>
        Effect.sync(() => {
          const all = [...table(entity)].filter(([, s]) => !s.deleted)
          const start = options?.cursor === undefined ? 0 : Number(options.cursor)
          const size = options?.pageSize ?? 100
          const page = all.slice(start, start + size).map(([x, s]) => toRecord(entity, x, s))
          return { records: page, next: start + size < all.length ? String(start + size) : undefined }
        }),
      read: (entity, externalId) =>
        Effect.suspend(() => {
          stats.reads++
          const s = table(entity).get(externalId)
          return s === undefined || s.deleted ? Effect.fail(notFound(entity, externalId)) : Effect.succeed(toRecord(entity, externalId, s))
        }),
      changes: (entities, cursor) =>
        Effect.sync(() => {
          const since = cursor === undefined ? "" : cursor
          const changes: Array<Provider.Change> = []
          let latest = since
          for (const e of entities) {
            for (const [x, s] of table(e)) {
              if (s.updatedAt <= since) continue
              if (s.updatedAt > latest) latest = s.updatedAt
              changes.push(s.deleted
                ? { _tag: "Deleted", entity: e, externalId: x, deletedAt: s.updatedAt }
                : { _tag: "Upserted", record: toRecord(e, x, s) })
            }
          }
          return { changes, cursor: latest, hasMore: false }
        }),
      write: (ops) =>
        Effect.suspend(() => {
          const fail = failNext.shift()
          if (fail !== undefined) return Effect.fail(fail)
          stats.writes++
          if (options.idempotency !== "request") return Effect.succeed(ops.map(writeOne))
          const requestKey = ops.map((o) => o.idempotencyKey).join("\n")
          const seen = requests.get(requestKey)
          if (seen !== undefined) {
            stats.idempotentReplays++
            return Effect.succeed(seen)
          }
          // Operation keys are not remembered on their own: a fresh request executes again.
          const answer = ops.map((o) => writeOne({ ...o, idempotencyKey: `${requestKey}#${o.idempotencyKey}` }))
          requests.set(requestKey, answer)
          return Effect.succeed(answer)
        }),
      withPriority: (_p, effect) => effect
    }
  }

  const provider: Provider.Provider = {
    id,
    displayName: "Memory",
    entities: Object.fromEntries(Canonical.entityTypes.map((e) => [e, capabilities(e)])),
    rateLimit: { requestsPerMinute: 1_000_000, concurrent: 100, batchSize: options.batchSize ?? 30 },
    defaultBaseUrl: "memory://",
    auth: {
      authorizationUrl: (app, state) => `memory://authorize?client_id=${app.clientId}&state=${state}`,
      exchangeCode: () =>
        Effect.succeed({
          tokens: { accessToken: Redacted.make("a"), refreshToken: Redacted.make("r"), accessTokenExpiresAt: Date.now() + 3_600_000 },
          accounts: [{ accountId: "memory-account" }]
        }),
      refresh: () => Effect.succeed({ accessToken: Redacted.make("a2"), refreshToken: Redacted.make("r2"), accessTokenExpiresAt: Date.now() + 3_600_000 })
    },
    client: (ctx) => Effect.succeed(client(ctx.connectionId))
  }

  /** What an accountant does in the provider's UI. */
  const accountant = {
    create: (entity: Canonical.EntityType, record: Obj): string => {
      const externalId = String(nextId++)
      table(entity).set(externalId, { record: keep(entity, record), version: 0, updatedAt: tick(), deleted: false })
      return externalId
    },
    edit: (entity: Canonical.EntityType, externalId: string, patch: Obj): void => {
      const s = table(entity).get(externalId)
      if (s === undefined) throw new Error(`no ${entity} ${externalId}`)
      s.record = { ...s.record, ...patch }
      s.version++
      s.updatedAt = tick()
    },
    delete: (entity: Canonical.EntityType, externalId: string): void => {
      const s = table(entity).get(externalId)
      if (s === undefined) throw new Error(`no ${entity} ${externalId}`)
      s.deleted = true
      s.version++
      s.updatedAt = tick()
    }
  }

  return {
    provider,
    accountant,
    stats,
    /** Fail the next write call (transport-level) with this error. */
    failNextWrite: (e: Errors.ProviderError) => failNext.push(e),
    records: (entity: string): Array<Obj & { externalId: string; version: number }> =>
      [...table(entity)].filter(([, s]) => !s.deleted).map(([x, s]) => ({ ...s.record, externalId: x, version: s.version })),
    get: (entity: string, externalId: string) => table(entity).get(externalId)
  }
}
