/**
 * The sync pipeline: state-based, batch-oriented, declared with the core DSL.
 *
 *   fetch-both → resolve → write → commit
 *
 * For every record a batch touches it reads the last agreed base, the app's
 * current state and (when needed) the provider's current state, three-way
 * merges the comparable projections, applies the connection's direction and
 * conflict policy, writes to the provider with idempotency keys and
 * optimistic concurrency (a stale version is re-read and re-merged, never
 * forced), then commits base, links, app records, conflicts, audit rows and
 * outbox events in one transaction. Because it always re-reads current
 * state, duplicate and out-of-order messages are harmless.
 *
 * App-triggered updates are optimistic: the provider is assumed to still be
 * at the linked version (its state = the base) and the write carries that
 * version; if the provider moved, the write fails as stale and the record is
 * re-read and merged for real.
 */
import { Canonical, Hash, Merge, Path, Pipeline, Refs } from "@concord/core"
import type { Policy } from "@concord/core"
import type { Provider } from "@concord/providers"
import { Errors } from "@concord/providers"
import { type Cause, Clock, Effect, Schema, Stream } from "effect"
import { type ChangeEvent, type ConflictEvent, subjects } from "./Events.ts"
import type { Resync } from "./Inbound.ts"
import {
  type AppRecord,
  type AuditEntry,
  type BackfillCheckpoint,
  type Base,
  type Commit,
  type ConnectionInfo,
  type EntityType,
  type ItemStatus,
  CrashPoint,
  emptyCommit,
  type Link,
  type ProviderSession,
  SyncStore
} from "./Ports.ts"
import * as Projection from "./Projection.ts"
import { type ErrorInfo, errorInfo, type Outcome, type WorkItem } from "./Work.ts"

type Obj = Record<string, unknown>
type Json = Merge.Json

// ---------------------------------------------------------------------------
// Pipeline data

/** Work items for one record (several messages can touch the same record). */
interface Group {
  readonly entity: EntityType
  recordId: string | undefined
  readonly externalId: string | undefined
  readonly keys: Array<string>
  source: WorkItem["source"]
  appChange: WorkItem["appChange"]
  prefer: WorkItem["prefer"]
  readonly operationIds: Array<string>
  readonly correlationId: string | undefined
  /** Latest notice time when every item is a provider notice (undefined otherwise). */
  noticeAt: string | undefined
  /** The provider's state, already read (a backfill page). */
  prefetched: Provider.ProviderRecord | undefined
}

export interface Batch {
  readonly connection: ConnectionInfo
  readonly session: ProviderSession
  readonly groups: ReadonlyArray<Group>
  /** Nesting level: dependencies of dependencies stop at 3. */
  readonly depth: number
  /**
   * A backfill page: its checkpoint commits with the batch, given the batch's
   * summary and how many of its records wait for an unanswered create of ours
   * (none is pulled yet); undefined leaves the page to be imported again.
   */
  readonly checkpoint?: ((summary: BatchResult["summary"], waiting: number) => BackfillCheckpoint | undefined) | undefined
}

interface Loaded {
  readonly group: Group
  readonly recordId: string | undefined
  /** The app's current state (from the message when newer than the stored one). */
  readonly app: AppRecord | undefined
  /** The app state comes from the message and must be stored. */
  readonly appFromMessage: boolean
  readonly link: Link | undefined
  readonly base: Base | undefined
  /** The provider's state: a record, `null` when it does not exist, undefined when not read. */
  readonly provider: Provider.ProviderRecord | null | undefined
  readonly error: { readonly info: ErrorInfo; readonly retry: boolean } | undefined
  /**
   * Not linked, but an earlier create of this record (sent under another key: the record changed since)
   * was answered by replaying its request: this is the provider record it created. It is linked, with
   * what that create sent as the base, and the app's current state is merged onto it.
   */
  readonly adopted?: { readonly record: Provider.ProviderRecord; readonly key: string } | undefined
  /** Earlier creates of this record whose replayed answer was a refusal: answered, nothing was created. */
  readonly refusedKeys?: ReadonlyArray<string> | undefined
}

interface Fetched {
  readonly batch: Batch
  readonly items: ReadonlyArray<Loaded>
}

interface PlannedOp {
  readonly kind: "create" | "update" | "remove"
  /** App-space projection to write (create/update). */
  readonly target: Obj | undefined
  readonly version: string | undefined
  readonly externalId: string | undefined
  readonly idempotencyKey: string
}

interface Decision {
  readonly loaded: Loaded
  readonly recordId: string
  readonly spec: Projection.ProjectionSpec | undefined
  readonly policy: Policy.PolicySpec | undefined
  readonly canPull: boolean
  readonly canPush: boolean
  op: PlannedOp | undefined
  /** App-space projection the app should end with (undefined: app unchanged). */
  appTarget: Obj | undefined
  /** App record to create from the provider (a pull of a new record). */
  pulled: Obj | undefined
  appDelete: boolean
  /** The agreed projection before any provider write. */
  nextBase: Obj | undefined
  /** The provider's projection as we last knew it. */
  providerProjection: Obj | undefined
  conflicts: ReadonlyArray<Merge.Resolution>
  resolutions: ReadonlyArray<Merge.Resolution>
  changedFields: ReadonlyArray<string>
  status: ItemStatus
  note: string | undefined
  error: { readonly info: ErrorInfo; readonly retry: boolean } | undefined
  /** Set after the write. */
  written: Provider.ProviderRecord | undefined
  removed: boolean
  /** The provider refused this create: it is answered (nothing was created), never to be replayed. */
  refused: boolean
  /** For an adopted record: what its create agreed (the base). */
  adoptedBase: Obj | undefined
  /** The app deleted it and the provider's record is already voided, deleted or archived. */
  removedAtProvider: boolean
}

interface Resolved {
  readonly batch: Batch
  readonly decisions: ReadonlyArray<Decision>
  /** Links known so far, by record and by external id (grows as records are created). */
  readonly index: LinkIndex
}

type Written = Resolved

export interface BatchResult {
  readonly outcomes: ReadonlyMap<string, Outcome>
  readonly summary: { readonly written: number; readonly pulled: number; readonly conflicts: number; readonly failed: number }
}

const opaque = <A>() => Schema.Any as unknown as Schema.Codec<A, any, never, never>

/** The declared pipeline: what runs, in which order, with which retry and timeout. */
export const SyncPipeline = Pipeline.make("sync", opaque<Batch>())
  .step("fetch-both", {
    output: opaque<Fetched>(),
    description: "read base, app state and provider state for every touched record",
    timeout: "120 seconds",
    retry: { times: 3, base: "200 millis", max: "5 seconds", on: ["StoreError"] }
  })
  .step("resolve", {
    output: opaque<Resolved>(),
    description: "three-way merge of the projections, direction and conflict policy; pull or push dependencies first",
    timeout: "300 seconds",
    retry: { times: 3, base: "200 millis", max: "5 seconds", on: ["StoreError"] }
  })
  .step("write", {
    output: opaque<Written>(),
    description: "batched, paced provider writes with idempotency keys; stale versions re-read and re-merged",
    timeout: "600 seconds",
    retry: { times: 3, base: "200 millis", max: "5 seconds", on: ["StoreError"] }
  })
  .step("commit", {
    output: opaque<BatchResult>(),
    description: "base, links, app records, conflicts, audit and outbox in one transaction",
    timeout: "60 seconds",
    retry: { times: 5, base: "200 millis", max: "5 seconds", on: ["StoreError"] }
  })

// ---------------------------------------------------------------------------
// Helpers

const permanent = new Set(["ProviderRejected", "Unsupported", "ValidationError", "ProviderProtocolError"])

const failure = (e: unknown): { readonly info: ErrorInfo; readonly retry: boolean } => {
  const info = errorInfo(e)
  return { info, retry: !permanent.has(info.tag) }
}

/** Canonical statuses of a provider record that is removed already (what a remove would have made it). */
const removedStatuses = new Set(["voided", "deleted", "archived"])

/** How long an unanswered create of ours keeps an unlinked provider record of the same entity from being pulled. */
export const PENDING_CREATE_WINDOW_MS = 10 * 60_000

const directionOf = (connection: ConnectionInfo, entity: EntityType) => connection.config.entities[entity]?.direction

const policyOf = (connection: ConnectionInfo, entity: EntityType): Policy.PolicySpec | undefined =>
  connection.config.entities[entity]?.policy

/** The app id a record pulled from the provider gets: the natural key for chart-of-accounts data. */
export const appIdFor = (provider: string, entity: EntityType, record: Obj, externalId: string): string => {
  const code = record.code
  if ((entity === "account" || entity === "currency") && typeof code === "string" && code.length > 0) return code
  return `${provider}:${externalId}`
}

const fieldsChanged = (from: Json | undefined, to: Json | undefined): ReadonlyArray<string> =>
  from === undefined || to === undefined
    ? []
    : Merge.changedFields(Merge.merge(from, from, to, "provider_wins")).map((f) => f.path)

const nowIso = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

const groupKey = (g: { entity: string; recordId?: string | undefined; externalId?: string | undefined }) =>
  g.recordId !== undefined ? `${g.entity}|r|${g.recordId}` : `${g.entity}|x|${g.externalId ?? ""}`

/** Groups work items by record; the newest app change wins. */
export const groupItems = (items: ReadonlyArray<WorkItem>): Array<Group> => {
  const groups = new Map<string, Group>()
  for (const item of items) {
    const k = groupKey(item)
    const g = groups.get(k)
    if (g === undefined) {
      groups.set(k, {
        entity: item.entity,
        recordId: item.recordId,
        externalId: item.externalId,
        keys: [item.key],
        source: item.source,
        appChange: item.appChange,
        prefer: item.prefer,
        operationIds: item.operationId === undefined ? [] : [item.operationId],
        correlationId: item.correlationId,
        noticeAt: item.source === "provider" ? item.occurredAt : undefined,
        prefetched: item.provider
      })
      continue
    }
    g.noticeAt = item.source === "provider" && g.source === "provider" && g.noticeAt !== undefined && item.occurredAt !== undefined
      ? (item.occurredAt > g.noticeAt ? item.occurredAt : g.noticeAt)
      : undefined
    g.keys.push(item.key)
    if (item.operationId !== undefined) g.operationIds.push(item.operationId)
    if (item.appChange !== undefined && (g.appChange === undefined || item.appChange.seq > g.appChange.seq)) g.appChange = item.appChange
    if (item.source === "provider") g.source = "provider"
    if (item.prefer !== undefined) g.prefer = item.prefer
    if (item.provider !== undefined) g.prefetched = item.provider
  }
  return [...groups.values()]
}

// ---------------------------------------------------------------------------
// Id-space translation

interface LinkIndex {
  readonly byRecord: Map<string, Link>
  readonly byExternal: Map<string, Link>
}

const linkKey = (entity: string, id: string) => `${entity}|${id}`

const emptyIndex = (): LinkIndex => ({ byRecord: new Map(), byExternal: new Map() })

const addLinks = (index: LinkIndex, links: Iterable<Link>) => {
  for (const l of links) {
    index.byRecord.set(linkKey(l.entity, l.recordId), l)
    index.byExternal.set(linkKey(l.entity, l.externalId), l)
  }
}

/** Loads the links for every reference of `records` (app space or provider space). */
const loadRefLinks = (
  connectionId: string,
  records: ReadonlyArray<Canonical.CanonicalRecord>,
  space: "app" | "provider",
  index: LinkIndex
) =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const wanted = new Map<EntityType, Set<string>>()
    for (const r of records) {
      for (const ref of Refs.refsOf(r)) {
        const known = space === "app" ? index.byRecord.has(linkKey(ref.entity, ref.id)) : index.byExternal.has(linkKey(ref.entity, ref.id))
        if (known) continue
        const set = wanted.get(ref.entity) ?? new Set<string>()
        set.add(ref.id)
        wanted.set(ref.entity, set)
      }
    }
    for (const [entity, ids] of wanted) {
      const links = space === "app"
        ? yield* store.links(connectionId, entity, [...ids])
        : yield* store.linksByExternalId(connectionId, entity, [...ids])
      addLinks(index, links.values())
    }
  })

interface Translated {
  readonly record: Obj
  readonly missing: ReadonlyArray<Refs.Ref>
}

const toProviderSpace = (record: Canonical.CanonicalRecord, index: LinkIndex, externalId: string | undefined): Translated => {
  const missing: Array<Refs.Ref> = []
  const mapped = Refs.mapRefs(record, (entity, id, path) => {
    const link = index.byRecord.get(linkKey(entity, id))
    if (link === undefined) {
      missing.push({ entity, id, path })
      return id
    }
    return link.externalId
  })
  return { record: { ...(mapped as Obj), id: externalId ?? (mapped as Obj).id }, missing }
}

const toAppSpace = (record: Canonical.CanonicalRecord, index: LinkIndex, recordId: string): Translated => {
  const missing: Array<Refs.Ref> = []
  const mapped = Refs.mapRefs(record, (entity, id, path) => {
    const link = index.byExternal.get(linkKey(entity, id))
    if (link === undefined) {
      missing.push({ entity, id, path })
      return id
    }
    return link.recordId
  })
  return { record: { ...(mapped as Obj), id: recordId }, missing }
}

// ---------------------------------------------------------------------------
// fetch-both

const fetchBoth = (batch: Batch) =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const { connection, session } = batch
    const byEntity = new Map<EntityType, Array<Group>>()
    for (const g of batch.groups) byEntity.set(g.entity, [...(byEntity.get(g.entity) ?? []), g])

    const items: Array<Loaded> = []
    for (const [entity, groups] of byEntity) {
      // Provider changes name the provider's id: find the record it is linked to.
      const external = groups.filter((g) => g.recordId === undefined && g.externalId !== undefined).map((g) => g.externalId as string)
      const byExternal = external.length > 0 ? yield* store.linksByExternalId(connection.id, entity, external) : new Map<string, Link>()
      for (const g of groups) {
        if (g.recordId === undefined && g.externalId !== undefined) g.recordId = byExternal.get(g.externalId)?.recordId
      }
      // A provider record nobody links to while a create of ours is unanswered (its commit lost to a crash or a
      // dropped database connection) may be that very create, echoed by a webhook or a poll: pulling it would
      // make it a second app record and the create's own commit would collide with its link. Wait until the
      // create is answered (its redelivery links it) or is old enough not to be it.
      const deferred = new Set<Group>()
      const unknown = groups.filter((g) => g.recordId === undefined && g.externalId !== undefined)
      if (unknown.length > 0) {
        const now = yield* Clock.currentTimeMillis
        const pending = yield* store.unansweredCreates(connection.id, entity, new Date(now - PENDING_CREATE_WINDOW_MS))
        if (pending > 0) for (const g of unknown) deferred.add(g)
      }
      // A provider change and an app change can name the same record: sync it once.
      const byRecord = new Map<string, Group>()
      for (const g of [...groups]) {
        if (g.recordId === undefined) continue
        const first = byRecord.get(g.recordId)
        if (first === undefined) {
          byRecord.set(g.recordId, g)
          continue
        }
        first.keys.push(...g.keys)
        first.operationIds.push(...g.operationIds)
        if (g.appChange !== undefined && (first.appChange === undefined || g.appChange.seq > first.appChange.seq)) first.appChange = g.appChange
        if (g.source === "provider" || g.source === "resync") first.source = first.source === "app" ? g.source : first.source
        if (g.prefer !== undefined) first.prefer = g.prefer
        first.noticeAt = undefined
        groups.splice(groups.indexOf(g), 1)
      }
      const ids = groups.map((g) => g.recordId).filter((id): id is string => id !== undefined)
      const [records, links, bases] = ids.length === 0
        ? [new Map<string, AppRecord>(), new Map<string, Link>(), new Map<string, Base>()]
        : [
          yield* store.records(connection.tenantId, entity, ids),
          yield* store.links(connection.id, entity, ids),
          yield* store.bases(connection.id, entity, ids)
        ]
      const recovered = yield* recoverCreates(batch, entity, ids.filter((id) => !links.has(id)))

      const loaded = yield* Effect.forEach(groups, (g) =>
        Effect.gen(function*() {
          const link = g.recordId === undefined ? undefined : links.get(g.recordId)
          const base = g.recordId === undefined ? undefined : bases.get(g.recordId)
          const stored = g.recordId === undefined ? undefined : records.get(g.recordId)
          let app = stored
          let appFromMessage = false
          const change = g.appChange
          if (change !== undefined && g.recordId !== undefined && (stored === undefined || change.seq > stored.appSeq)) {
            const data = (change.record ?? stored?.data) as Canonical.CanonicalRecord | undefined
            if (data !== undefined) {
              app = {
                entity,
                recordId: g.recordId,
                data,
                hash: Hash.contentHash(data),
                deleted: change.deleted,
                appSeq: change.seq,
                origin: "app"
              }
              appFromMessage = true
            }
          }
          const externalId = link?.externalId ?? g.externalId
          // An app change may skip reading the provider only when the provider was
          // left exactly at the base (no field under review, nothing unpulled).
          const providerAtBase = link !== undefined && base !== undefined && link.providerHash === base.hash
          // A notice of a change no newer than the provider state we hold (typically the echo of our
          // own write) needs no read: that state already includes it.
          const alreadySeen = g.source === "provider" && g.noticeAt !== undefined && providerAtBase &&
            link?.providerUpdatedAt != null && Date.parse(g.noticeAt) <= Date.parse(link.providerUpdatedAt)
          const needsRead = externalId !== undefined && !alreadySeen && (
            g.source === "provider" || g.source === "resync" || g.source === "dependency" ||
            g.prefer !== undefined || (link !== undefined && !providerAtBase)
          )
          let provider: Provider.ProviderRecord | null | undefined = g.prefetched
          let error: Loaded["error"] = undefined
          if (provider === undefined && needsRead && externalId !== undefined && !(link?.providerDeleted === true && g.source === "app")) {
            const read = yield* Effect.exit(session.client.read(entity, externalId))
            if (read._tag === "Success") provider = read.value
            else {
              const e = read.cause.reasons.find((r) => r._tag === "Fail")
              if (e !== undefined && e._tag === "Fail" && e.error._tag === "NotFound") provider = null
              else error = failure(e !== undefined && e._tag === "Fail" ? e.error : read.cause)
            }
          }
          const recovery = g.recordId === undefined ? undefined : recovered.get(g.recordId)
          if (recovery?.error !== undefined) error = recovery.error
          if (recovery?.adopted !== undefined && provider === undefined) provider = recovery.adopted.record
          if (deferred.has(g)) {
            error = {
              info: { tag: "PendingCreate", message: `${connection.provider} ${entity} ${g.externalId ?? ""} is linked to no record while a create of ours is unanswered; retried once that create is committed` },
              retry: true
            }
          }
          return {
            group: g,
            recordId: g.recordId,
            app,
            appFromMessage,
            link,
            base,
            provider,
            error,
            adopted: recovery?.error === undefined ? recovery?.adopted : undefined,
            refusedKeys: recovery?.refusedKeys
          } satisfies Loaded
        }), { concurrency: 8 })
      items.push(...loaded)
    }
    return { batch, items } satisfies Fetched
  })

interface Recovery {
  adopted?: { readonly record: Provider.ProviderRecord; readonly key: string }
  refusedKeys: Array<string>
  error?: { readonly info: ErrorInfo; readonly retry: boolean }
}

/**
 * Records not linked yet whose earlier create was sent and never answered (a crash or a lost commit between
 * the provider's answer and ours): the record may exist at the provider. Its key named the record as it was
 * then, so a record changed since would be created again under its new key. Instead, the request that
 * create went out in is replayed exactly (the provider answers it from its idempotency memory, or executes it
 * once if it never arrived), and the record it created is adopted: linked, then brought up to date.
 */
const recoverCreates = (batch: Batch, entity: EntityType, recordIds: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out = new Map<string, Recovery>()
    if (recordIds.length === 0) return out
    const store = yield* SyncStore
    const { connection, session } = batch
    const earlier = yield* store.unansweredCreatesOf(connection.id, entity, recordIds)
    if (earlier.length === 0) return out
    const waiting = new Set(recordIds)
    const now = yield* Clock.currentTimeMillis
    const of = (recordId: string): Recovery => {
      const r = out.get(recordId) ?? { refusedKeys: [] }
      out.set(recordId, r)
      return r
    }
    for (const b of earlier) {
      const mine = b.ops.flatMap((o, i) => {
        const r = out.get(o.recordId)
        return o.entity === entity && !o.answered && waiting.has(o.recordId) && r?.adopted === undefined && r?.error === undefined ? [{ o, i }] : []
      })
      if (mine.length === 0) continue
      if (now - Date.parse(b.sentAt) > REPLAY_WINDOW_MS) {
        for (const { o } of mine) of(o.recordId).error = { info: errorInfo(unconfirmedCreate(connection, entity, b.sentAt)), retry: false }
        continue
      }
      const replay = yield* Effect.exit(session.client.write(b.ops.map((o) => o.payload as Provider.WriteOp)))
      for (const { o, i } of mine) {
        const r = of(o.recordId)
        if (replay._tag === "Failure") {
          r.error = failureOfExit(replay)
          continue
        }
        const answer = replay.value[i]
        if (answer === undefined) r.error = { retry: true, info: { tag: "NoAnswer", message: `${connection.provider} gave no answer for the replayed create of ${entity} ${o.recordId}` } }
        else if (answer._tag === "Written") r.adopted = { record: answer.record, key: o.key }
        else if (answer._tag === "Failed") {
          const f = failure(answer.error)
          if (f.retry) r.error = f
          else r.refusedKeys.push(o.key)
        }
      }
    }
    return out
  })

const unconfirmedCreate = (connection: ConnectionInfo, entity: EntityType, sentAt: string) =>
  new Errors.ProviderRejected({
    provider: connection.provider,
    connectionId: connection.id,
    entity,
    code: "UnconfirmedCreate",
    providerMessage: `this record was sent to ${connection.provider} at ${sentAt} and the answer was lost; creating it again could post it twice`,
    hint: "check the provider for it, then link or recreate it (concord drift shows duplicates and missing records)"
  })

// ---------------------------------------------------------------------------
// resolve

const decide = (
  batch: Batch,
  loaded: Loaded,
  index: LinkIndex
): Decision => {
  const { connection, session } = batch
  const entity = loaded.group.entity
  const capabilities = session.provider.entities[entity]
  const direction = directionOf(connection, entity)
  const dependency = loaded.group.source === "dependency"
  const canPush = direction === "push" || direction === "both"
  const canPull = direction === "pull" || direction === "both"
  const recordId = loaded.recordId ?? (loaded.provider != null
    ? appIdFor(connection.provider, entity, loaded.provider.record as unknown as Obj, loaded.provider.externalId)
    : loaded.group.externalId ?? "")
  const d: Decision = {
    loaded,
    recordId,
    spec: capabilities === undefined ? undefined : Projection.specFor(capabilities, connection.config.mapping?.[entity]),
    policy: policyOf(connection, entity),
    canPull,
    canPush,
    op: undefined,
    appTarget: undefined,
    pulled: undefined,
    appDelete: false,
    nextBase: undefined,
    providerProjection: undefined,
    conflicts: [],
    resolutions: [],
    changedFields: [],
    status: "synced",
    note: undefined,
    error: loaded.error,
    written: undefined,
    removed: false,
    refused: false,
    adoptedBase: undefined,
    removedAtProvider: false
  }
  if (d.error !== undefined) return d
  if (capabilities === undefined || d.spec === undefined) {
    d.status = "skipped"
    d.note = `${connection.provider} does not support ${entity}`
    return d
  }
  if (direction === undefined && !dependency) {
    d.status = "skipped"
    d.note = `${entity} is not enabled for connection ${connection.id}`
    return d
  }
  const spec = d.spec
  const { app } = loaded

  // The provider's state in the app's id space, projected.
  let providerFull: Obj | undefined
  if (loaded.provider != null) {
    const t = toAppSpace(loaded.provider.record, index, recordId)
    providerFull = Projection.toAppNames(t.record, spec)
  }
  const providerProjection = providerFull === undefined ? undefined : Projection.project(providerFull, spec)
  // A record our earlier create made (its answer recovered by replaying the request): linked to it, and what
  // that create agreed is the base, so the app's later changes are pushed as changes, not conflicts.
  const adopted = loaded.adopted
  const link: Link | undefined = loaded.link ?? (adopted === undefined ? undefined : {
    entity,
    recordId,
    externalId: adopted.record.externalId,
    version: adopted.record.version,
    providerHash: null,
    providerDeleted: false,
    providerUpdatedAt: adopted.record.updatedAt
  })
  let base = loaded.base
  if (base === undefined && adopted !== undefined) {
    const data = Projection.project(Projection.toAppNames(toAppSpace(adopted.record.record, index, recordId).record, spec), spec)
    base = { entity, recordId, data, hash: Hash.contentHash(data) }
    d.adoptedBase = data
  }
  d.providerProjection = providerProjection ?? base?.data

  if (link === undefined) {
    if (app !== undefined && !app.deleted) {
      if (!canPush && !dependency) {
        d.status = "skipped"
        d.note = `${entity} syncs ${direction} only: the app's record is not pushed`
        return d
      }
      if (loaded.provider != null) {
        // The provider already has it (a dependency found by natural key): link and merge from no base.
        return mergeBoth(d, Projection.project(app.data, spec), providerProjection as Obj, undefined)
      }
      const target = Projection.project(app.data, spec)
      d.op = { kind: "create", target, version: undefined, externalId: undefined, idempotencyKey: "" }
      return d
    }
    if (loaded.provider != null && providerFull !== undefined) {
      if (!canPull && !dependency) {
        d.status = "skipped"
        d.note = `${entity} syncs ${direction} only: the provider's record is not pulled`
        return d
      }
      d.pulled = providerFull
      d.appTarget = providerProjection
      d.nextBase = providerProjection
      d.changedFields = Object.keys(providerProjection ?? {})
      return d
    }
    d.status = "skipped"
    d.note = "nothing to sync on either side"
    return d
  }

  // Linked.
  if (loaded.provider === null || (link.providerDeleted && loaded.provider === undefined)) {
    // Deleted at the provider.
    const appProjection = app === undefined || app.deleted ? undefined : Projection.project(app.data, spec)
    const appChanged = appProjection !== undefined && base !== undefined && !Merge.equals(appProjection as Json, base.data as Json)
    if (app === undefined || app.deleted) {
      d.status = "synced"
      d.note = "deleted on both sides"
      return d
    }
    const spec0 = d.policy
    const wholeRecordPolicy: Policy.Policy = spec0 === undefined ? "review" : typeof spec0 === "string" ? spec0 : spec0.default
    if (appChanged && wholeRecordPolicy === "app_wins" && canPush) {
      d.op = { kind: "create", target: appProjection, version: undefined, externalId: undefined, idempotencyKey: "" }
      d.note = "deleted at the provider but changed in the app: re-created (app_wins)"
      return d
    }
    if (appChanged && wholeRecordPolicy === "review") {
      d.conflicts = [{ path: "(record)", segments: [], policy: "review", outcome: "open", base: base?.data as Json, app: appProjection as Json, provider: undefined }]
      d.status = "conflict"
      return d
    }
    if (canPull) {
      d.appDelete = true
      d.note = "deleted at the provider"
      return d
    }
    d.note = "deleted at the provider; the app keeps it (push only)"
    return d
  }

  if (app === undefined) {
    d.status = "skipped"
    d.note = "linked, but the app has no such record"
    return d
  }
  if (app.deleted) {
    // Already voided, deleted or archived there (our own remove whose answer was lost, or the accountant's):
    // removing it again would be refused ("not of valid status for modification"), and there is nothing to do.
    const status = (loaded.provider?.record as { readonly status?: unknown } | undefined)?.status
    d.removedAtProvider = typeof status === "string" && removedStatuses.has(status)
    if ((canPush || dependency) && !link.providerDeleted && !d.removedAtProvider) {
      d.op = { kind: "remove", target: undefined, version: loaded.provider?.version ?? link.version, externalId: link.externalId, idempotencyKey: "" }
    } else {
      d.note = d.removedAtProvider ? "deleted in the app, already removed at the provider" : "deleted in the app"
    }
    return d
  }
  const appProjection = Projection.project(app.data, spec)
  let baseData = base?.data
  if (loaded.group.prefer === "app") baseData = providerProjection ?? baseData
  if (loaded.group.prefer === "provider") baseData = appProjection
  return mergeBoth(d, appProjection, (providerProjection ?? base?.data ?? {}) as Obj, baseData)
}

/** Both sides exist: merge, then apply direction and policy. */
const mergeBoth = (d: Decision, appProjection: Obj, providerProjection: Obj, baseData: Obj | undefined): Decision => {
  const merged = Merge.merge(baseData as Json | undefined, appProjection as Json, providerProjection as Json, d.policy)
  const canPush = d.canPush || d.loaded.group.source === "dependency"
  const canPull = d.canPull || d.loaded.group.source === "dependency"
  const appTarget = canPull ? (merged.app as Obj) : appProjection
  const providerTarget = canPush ? (merged.provider as Obj) : providerProjection
  d.resolutions = merged.resolutions
  d.conflicts = merged.conflicts
  d.nextBase = Merge.agreed(baseData as Json | undefined, appTarget as Json, providerTarget as Json) as Obj
  if (!Merge.equals(appTarget as Json, appProjection as Json)) {
    d.appTarget = appTarget
    d.changedFields = fieldsChanged(appProjection as Json, appTarget as Json)
  }
  const link = d.loaded.link
  if (!Merge.equals(providerTarget as Json, providerProjection as Json)) {
    if (link === undefined && d.loaded.provider != null) {
      d.op = { kind: "update", target: providerTarget, version: d.loaded.provider.version, externalId: d.loaded.provider.externalId, idempotencyKey: "" }
    } else if (link !== undefined) {
      d.op = { kind: "update", target: providerTarget, version: d.loaded.provider?.version ?? link.version, externalId: link.externalId, idempotencyKey: "" }
    }
  }
  if (d.conflicts.length > 0) d.status = "conflict"
  return d
}

const resolve = (fetched: Fetched) =>
  Effect.gen(function*() {
    const { batch } = fetched
    const { connection } = batch
    const index = emptyIndex()
    // Links of the records themselves (for refs pointing at records of this batch).
    addLinks(index, fetched.items.map((l) => l.link).filter((l): l is Link => l !== undefined))

    // Pull side: the provider's records refer to provider ids; unknown ones are pulled first.
    const providerRecords = fetched.items.map((l) => l.provider).filter((p): p is Provider.ProviderRecord => p != null)
    yield* loadRefLinks(connection.id, providerRecords.map((p) => p.record), "provider", index)
    const missingPulls = new Map<string, WorkItem>()
    for (const p of providerRecords) {
      for (const ref of Refs.refsOf(p.record)) {
        if (index.byExternal.has(linkKey(ref.entity, ref.id))) continue
        missingPulls.set(linkKey(ref.entity, ref.id), { key: `dep:${ref.entity}:${ref.id}`, entity: ref.entity, externalId: ref.id, source: "dependency" })
      }
    }
    // Push side: the app's records refer to app ids; unknown ones are pushed (or found by natural key) first.
    const appRecords = fetched.items
      .filter((l) => l.app !== undefined && !l.app.deleted)
      .map((l) => l.app?.data as Canonical.CanonicalRecord)
    yield* loadRefLinks(connection.id, appRecords, "app", index)
    const missingPushes = new Map<string, WorkItem>()
    for (const r of appRecords) {
      for (const ref of Refs.refsOf(r)) {
        if (ref.entity === r.entity && ref.id === r.id) continue
        if (index.byRecord.has(linkKey(ref.entity, ref.id))) continue
        missingPushes.set(linkKey(ref.entity, ref.id), { key: `dep:${ref.entity}:${ref.id}`, entity: ref.entity, recordId: ref.id, source: "dependency" })
      }
    }
    if ((missingPulls.size > 0 || missingPushes.size > 0) && batch.depth < 3) {
      const natural = yield* findByNaturalKey(batch, [...missingPushes.values()])
      yield* runBatch(connection, batch.session, [...missingPulls.values(), ...natural], batch.depth + 1)
      yield* loadRefLinks(connection.id, providerRecords.map((p) => p.record), "provider", index)
      yield* loadRefLinks(connection.id, appRecords, "app", index)
    }

    const decisions = fetched.items.map((loaded) => decide(batch, loaded, index))

    // References that are still unknown make the record wait (they may arrive later).
    for (const d of decisions) {
      if (d.error !== undefined || d.spec === undefined) continue
      const app = d.loaded.app
      if (d.op !== undefined && d.op.kind !== "remove" && app !== undefined) {
        const t = toProviderSpace(app.data, index, d.op.externalId)
        const missing = t.missing.filter((m) => !(m.entity === app.entity && m.id === app.recordId))
        if (missing.length > 0) {
          d.error = {
            retry: true,
            info: {
              tag: "UnresolvedReference",
              message: missing.map((m) =>
                `${app.entity} ${app.recordId} refers to ${m.entity} '${m.id}' (${m.path}), which does not exist in ${connection.provider} and is not a record Concord knows: create it in ${connection.provider} or push it first`
              ).join("; ")
            }
          }
          d.op = undefined
        }
      }
      if (d.loaded.provider != null && d.error === undefined) {
        const t = toAppSpace(d.loaded.provider.record, index, d.recordId)
        if (t.missing.length > 0 && (d.pulled !== undefined || d.appTarget !== undefined)) {
          d.error = {
            retry: true,
            info: {
              tag: "UnresolvedReference",
              message: t.missing.map((m) => `${connection.provider} ${d.loaded.group.entity} ${d.loaded.provider?.externalId} refers to ${m.entity} ${m.id} (${m.path}), which could not be pulled`).join("; ")
            }
          }
        }
      }
    }
    return { batch, decisions, index } satisfies Resolved
  })

/**
 * Reference data the app names by natural key (account "4000", currency
 * "EUR") that exists at the provider but was never linked: find it there so
 * it is pulled and linked instead of created twice.
 */
const findByNaturalKey = (batch: Batch, wanted: ReadonlyArray<WorkItem>) =>
  Effect.gen(function*() {
    const out: Array<WorkItem> = []
    const byEntity = new Map<EntityType, Array<WorkItem>>()
    for (const w of wanted) byEntity.set(w.entity, [...(byEntity.get(w.entity) ?? []), w])
    for (const [entity, items] of byEntity) {
      const natural = entity === "account" || entity === "currency" || entity === "tax_rate" || entity === "tracking_category"
      const store = yield* SyncStore
      const existing = yield* store.records(batch.connection.tenantId, entity, items.map((i) => i.recordId as string))
      for (const item of items) {
        if (existing.has(item.recordId as string) && existing.get(item.recordId as string)?.deleted !== true) out.push(item)
      }
      if (!natural || batch.session.provider.entities[entity] === undefined) continue
      const unknown = new Set(items.map((i) => i.recordId as string).filter((id) => !existing.has(id)))
      if (unknown.size === 0) continue
      const found = yield* collectMatches(batch.session.client.list(entity), entity, unknown)
      out.push(...found)
    }
    return out
  })

const collectMatches = (
  stream: Stream.Stream<Provider.ProviderRecord, Errors.ProviderError>,
  entity: EntityType,
  unknown: Set<string>
) =>
  Effect.gen(function*() {
    const matches: Array<WorkItem> = []
    yield* Stream.runForEach(stream, (p) =>
      Effect.sync(() => {
        const r = p.record as unknown as Obj
        const keys = [r.code, r.name, r.id].filter((k): k is string => typeof k === "string")
        const hit = keys.find((k) => unknown.has(k))
        if (hit !== undefined) {
          unknown.delete(hit)
          matches.push({ key: `dep:${entity}:${p.externalId}`, entity, externalId: p.externalId, source: "dependency" })
        }
      })).pipe(Effect.catch(() => Effect.void))
    return matches
  })

// ---------------------------------------------------------------------------
// write

const MAX_STALE_ROUNDS = 3

/** How long a provider remembers an idempotency key, at most, as far as we rely on it. */
const REPLAY_WINDOW_MS = 60 * 60_000

/**
 * Sends operations so that no create is ever executed twice.
 *
 * Providers de-duplicate a batch request by an idempotency key derived from
 * the keys of the operations in it, so a create is only safe to retry in the
 * very request it first went out in. Every request's composition is recorded
 * (before it is sent) with its creates; a create that was sent before and
 * whose answer never got committed (a crash, a failed commit) is resolved by
 * replaying that request exactly, which the provider answers from its
 * idempotency cache instead of creating again. Past the provider's memory
 * window it is not replayed: the record is flagged for a person instead.
 */
const sendExactlyOnce = (batch: Batch, items: ReadonlyArray<{ readonly op: Provider.WriteOp; readonly recordId: string }>) =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const { connection, session } = batch
    const ops = items.map((i) => i.op)
    const recordIdOf = new Map(items.map((i) => [i.op.idempotencyKey, i.recordId]))
    const results: Array<Provider.WriteResult | undefined> = ops.map(() => undefined)
    const at = new Map(ops.map((op, i) => [op.idempotencyKey, i]))
    const settled = new Set<string>()
    const now = yield* Clock.currentTimeMillis

    // 1. Creates sent before: replay their original requests.
    const creates = ops.filter((o) => o._tag === "Create").map((o) => o.idempotencyKey)
    const earlier = creates.length === 0 ? [] : yield* store.unansweredBatches(connection.id, creates)
    for (const b of earlier) {
      const mine = b.ops.filter((o) => at.has(o.key) && !settled.has(o.key))
      if (mine.length === 0) continue
      if (now - Date.parse(b.sentAt) > REPLAY_WINDOW_MS) {
        for (const o of mine) {
          settled.add(o.key)
          results[at.get(o.key) as number] = {
            _tag: "Failed",
            error: unconfirmedCreate(connection, (ops[at.get(o.key) as number] as Provider.WriteOp).entity, b.sentAt)
          }
        }
        continue
      }
      const replay = yield* Effect.exit(session.client.write(b.ops.map((o) => o.payload as Provider.WriteOp)))
      if (replay._tag === "Failure") return { _tag: "Failure" as const, error: failureOfExit(replay) }
      replay.value.forEach((r, i) => {
        const key = b.ops[i]?.key
        if (key === undefined || !at.has(key) || settled.has(key)) return
        settled.add(key)
        results[at.get(key) as number] = r
      })
    }

    // 2. Everything else, in requests of the provider's batch size, each recorded before it is sent. Creates
    // go in requests of their own: a replay resends only a request's creates, and a request's idempotency
    // key (QuickBooks requestid, Xero Idempotency-Key) is derived from all of its operations.
    const rest = ops.filter((o) => !settled.has(o.idempotencyKey))
    const size = Math.max(1, session.provider.rateLimit.batchSize)
    const chunks: Array<ReadonlyArray<Provider.WriteOp>> = []
    for (const part of [rest.filter((o) => o._tag === "Create"), rest.filter((o) => o._tag !== "Create")]) {
      for (let i = 0; i < part.length; i += size) chunks.push(part.slice(i, i + size))
    }
    yield* store.recordIntents(connection.id, chunks.flatMap((chunk) => {
      const batchKey = Hash.sha256(chunk.map((o) => o.idempotencyKey).join("\n")).slice(0, 32)
      return chunk.map((o, position) => ({
        key: o.idempotencyKey,
        entity: o.entity,
        recordId: recordIdOf.get(o.idempotencyKey) ?? "",
        operation: o._tag.toLowerCase(),
        ...(o._tag === "Create" ? { batchKey, position, payload: o } : {})
      }))
    }))
    const answers = yield* Effect.forEach(chunks, (chunk) => Effect.exit(session.client.write(chunk)), { concurrency: 4 })
    for (const [i, answer] of answers.entries()) {
      if (answer._tag === "Failure") return { _tag: "Failure" as const, error: failureOfExit(answer) }
      ;(chunks[i] as ReadonlyArray<Provider.WriteOp>).forEach((o, j) => {
        results[at.get(o.idempotencyKey) as number] = answer.value[j]
      })
    }
    return { _tag: "Success" as const, value: results }
  })

const failureOfExit = (exit: { readonly cause: Cause.Cause<unknown> }) => {
  const e = exit.cause.reasons.find((r) => r._tag === "Fail")
  return failure(e !== undefined && e._tag === "Fail" ? e.error : exit.cause)
}

const write = (resolved: Resolved) =>
  Effect.gen(function*() {
    const { batch, index } = resolved
    const { connection, session } = batch
    let pending = resolved.decisions.filter((d) => d.op !== undefined && d.error === undefined)
    for (let round = 0; round < MAX_STALE_ROUNDS && pending.length > 0; round++) {
      // Build the provider operations (provider id space, provider custom-field names).
      const ops: Array<Provider.WriteOp> = []
      const owners: Array<Decision> = []
      for (const d of pending) {
        const op = d.op as PlannedOp
        const spec = d.spec as Projection.ProjectionSpec
        const targetHash = op.target === undefined ? "remove" : Hash.contentHash(op.target)
        const key = Hash.idempotencyKey({
          connectionId: connection.id,
          entity: d.loaded.group.entity,
          recordId: d.recordId,
          baseVersion: op.version ?? null,
          targetHash: `${op.kind}:${targetHash}`
        })
        d.op = { ...op, idempotencyKey: key }
        if (op.kind === "remove") {
          ops.push({ _tag: "Remove", entity: d.loaded.group.entity, externalId: op.externalId as string, version: op.version as string, idempotencyKey: key })
        } else {
          const full = Projection.toProviderNames(op.target as Obj, spec)
          const t = toProviderSpace(full as unknown as Canonical.CanonicalRecord, index, op.externalId)
          const record = t.record as unknown as Canonical.CanonicalRecord
          ops.push(op.kind === "create"
            ? { _tag: "Create", entity: d.loaded.group.entity, record, idempotencyKey: key }
            : { _tag: "Update", entity: d.loaded.group.entity, externalId: op.externalId as string, version: op.version as string, record, idempotencyKey: key })
        }
        owners.push(d)
      }
      const results = yield* sendExactlyOnce(batch, ops.map((op, i) => ({ op, recordId: (owners[i] as Decision).recordId })))
      if (results._tag === "Failure") {
        for (const d of owners) d.error = results.error
        break
      }
      const stale: Array<Decision> = []
      results.value.forEach((r, i) => {
        const d = owners[i] as Decision
        if (r === undefined) d.error = { retry: true, info: { tag: "NoAnswer", message: "the provider gave no answer for this operation" } }
        else if (r._tag === "Written") d.written = r.record
        else if (r._tag === "Removed") d.removed = true
        else if (r.error._tag === "StaleVersion" || r.error._tag === "NotFound") stale.push(d)
        else {
          d.error = failure(r.error)
          // A create the provider refused created nothing: answered (a create we could not confirm is not).
          const unconfirmed = r.error._tag === "ProviderRejected" && r.error.code === "UnconfirmedCreate"
          if (d.op?.kind === "create" && !d.error.retry && !unconfirmed) d.refused = true
        }
      })
      if (stale.length === 0) break
      // Someone changed these at the provider meanwhile: read them and merge again.
      const reread = yield* Effect.forEach(stale, (d) =>
        session.client.read(d.loaded.group.entity, (d.op as PlannedOp).externalId as string).pipe(
          Effect.map((p): Provider.ProviderRecord | null => p),
          Effect.catchTag("NotFound", () => Effect.succeed(null)),
          Effect.exit
        ), { concurrency: 8 })
      const again: Array<Decision> = []
      stale.forEach((d, i) => {
        const read = reread[i]
        if (read === undefined || read._tag === "Failure") {
          const e = read?.cause.reasons.find((x) => x._tag === "Fail")
          d.error = failure(e !== undefined && e._tag === "Fail" ? e.error : "re-read failed")
          return
        }
        const loaded: Loaded = { ...d.loaded, provider: read.value }
        const next = decide(batch, loaded, index)
        Object.assign(d, next, { loaded })
        if (d.op !== undefined && d.error === undefined) again.push(d)
      })
      pending = again
      if (round === MAX_STALE_ROUNDS - 1) {
        for (const d of pending) {
          d.error = { retry: true, info: { tag: "StaleVersion", message: `${connection.provider} kept changing ${d.loaded.group.entity} ${d.recordId} while we merged; will try again` } }
        }
      }
    }
    if (resolved.decisions.some((d) => d.written !== undefined || d.removed)) yield* (yield* CrashPoint)("after-provider-write")
    // Links for records created in this batch, so their provider records translate back.
    for (const d of resolved.decisions) {
      if (d.written !== undefined) {
        addLinks(index, [{ entity: d.loaded.group.entity, recordId: d.recordId, externalId: d.written.externalId, version: d.written.version, providerHash: null, providerDeleted: false, providerUpdatedAt: d.written.updatedAt }])
      }
    }
    return resolved satisfies Written
  })

// ---------------------------------------------------------------------------
// commit

const commit = (written: Written) =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const { batch, index } = written
    const { connection } = batch
    const at = yield* nowIso
    const records: Array<Commit["records"][number]> = []
    const links: Array<Link> = []
    const bases: Array<Base> = []
    const syncStates: Array<Commit["syncStates"][number]> = []
    const conflicts: Array<Commit["conflicts"][number]> = []
    const conflictScopes: Array<Commit["conflictScopes"][number]> = []
    const audit: Array<AuditEntry> = []
    const events: Array<Commit["events"][number]> = []
    const idempotency: Array<Commit["idempotency"][number]> = []
    const operations: Array<Commit["operations"][number]> = []
    const outcomes = new Map<string, Outcome>()
    const summary = { written: 0, pulled: 0, conflicts: 0, failed: 0 }
    const siblings = connection.tenant.connections.filter((c) => c.id !== connection.id)

    const openBefore = new Map<string, Set<string>>()
    for (const [entity, ids] of groupIds(written.decisions)) {
      for (const c of yield* store.openConflicts(connection.id, entity, ids)) {
        const k = linkKey(c.entity, c.recordId)
        openBefore.set(k, (openBefore.get(k) ?? new Set()).add(c.path))
      }
    }

    for (const d of written.decisions) {
      const entity = d.loaded.group.entity
      const g = d.loaded.group
      const correlationId = g.correlationId ?? g.keys[0]
      const base = { connectionId: connection.id, entity, recordId: d.recordId, ...(correlationId === undefined ? {} : { correlationId }) }
      const finish = (outcome: Outcome) => {
        for (const k of g.keys) outcomes.set(k, outcome)
        // A retry is not an answer yet: operations hear only final outcomes.
        if (outcome._tag === "Retry") return
        for (const op of g.operationIds) {
          operations.push({
            operationId: op,
            entity,
            recordId: d.recordId,
            status: outcome._tag === "Done" ? (outcome.status === "conflict" ? "conflict" : "succeeded") : "failed",
            ...(outcome._tag === "Done" ? {} : { detail: outcome.error })
          })
        }
      }

      // The app's change is stored even when the provider side failed: it is the app's state.
      if (d.loaded.appFromMessage && d.loaded.app !== undefined) {
        const a = d.loaded.app
        records.push({ entity, recordId: a.recordId, data: a.data, hash: a.hash, deleted: a.deleted, appSeq: a.appSeq, origin: "app" })
      }
      // Every accepted app change gets its audit row, also one a newer change superseded.
      if (g.appChange !== undefined) {
        const applied = d.loaded.appFromMessage
        const detail = { seq: g.appChange.seq, applied, ...(d.loaded.app === undefined ? {} : { hash: d.loaded.app.hash }) }
        const action = g.appChange.deleted ? "app_delete" : "app_change"
        for (const correlationId of g.operationIds.length > 0 ? g.operationIds : [base.correlationId]) {
          audit.push({ ...base, ...(correlationId === undefined ? {} : { correlationId }), action, actor: "app", step: "fetch-both", detail })
        }
      }

      // Earlier creates of this record answered by a refusal (replayed in fetch-both), or this one refused now:
      // answered, nothing to replay, no provider record can be theirs.
      for (const key of d.loaded.refusedKeys ?? []) idempotency.push({ key, entity, recordId: d.recordId, operation: "create" })
      if (d.refused && d.op !== undefined) idempotency.push({ key: d.op.idempotencyKey, entity, recordId: d.recordId, operation: "create" })
      // The record an earlier create of ours made (its answer recovered by a replay) is ours whatever happens next.
      const adopted = d.loaded.adopted
      if (adopted !== undefined) {
        idempotency.push({ key: adopted.key, entity, recordId: d.recordId, operation: "create", externalId: adopted.record.externalId, version: adopted.record.version })
        audit.push({
          ...base,
          action: "provider_create",
          actor: "concord",
          step: "fetch-both",
          detail: { externalId: adopted.record.externalId, version: adopted.record.version, idempotencyKey: adopted.key, replayed: true }
        })
      }

      if (d.error?.info.tag === "PendingCreate") {
        // Not a failure of any record: the notice waits for our create to be committed (see fetch-both).
        finish({ _tag: "Retry", error: d.error.info })
        continue
      }
      if (d.error !== undefined) {
        if (adopted !== undefined) {
          // Linked even though what follows failed: a retry then updates it instead of creating it again.
          links.push({
            entity,
            recordId: d.recordId,
            externalId: adopted.record.externalId,
            version: d.written?.version ?? adopted.record.version,
            providerHash: null,
            providerDeleted: d.removed,
            providerUpdatedAt: d.written?.updatedAt ?? adopted.record.updatedAt
          })
          if (d.adoptedBase !== undefined) bases.push({ entity, recordId: d.recordId, data: d.adoptedBase, hash: Hash.contentHash(d.adoptedBase) })
        }
        summary.failed++
        syncStates.push({ entity, recordId: d.recordId, status: "error", error: d.error.info })
        audit.push({ ...base, action: "sync_failed", actor: "system", step: d.written === undefined ? "write" : "commit", detail: { error: d.error.info, retry: d.error.retry } })
        finish(d.error.retry ? { _tag: "Retry", error: d.error.info } : { _tag: "Dead", error: d.error.info })
        continue
      }
      if (d.status === "skipped") {
        syncStates.push({ entity, recordId: d.recordId, status: "skipped", error: { message: d.note } })
        finish({ _tag: "Done", status: "skipped", recordId: d.recordId })
        continue
      }
      const spec = d.spec as Projection.ProjectionSpec

      // Provider side after the write.
      let providerProjection = d.providerProjection
      let externalId = d.loaded.link?.externalId ?? d.loaded.provider?.externalId
      let version = d.loaded.provider?.version ?? d.loaded.link?.version
      let providerUpdatedAt = d.loaded.provider?.updatedAt ?? d.loaded.link?.providerUpdatedAt ?? null
      let appTarget = d.appTarget
      if (d.written !== undefined) {
        summary.written++
        const t = toAppSpace(d.written.record, index, d.recordId)
        providerProjection = Projection.project(Projection.toAppNames(t.record, spec), spec)
        externalId = d.written.externalId
        version = d.written.version
        providerUpdatedAt = d.written.updatedAt
        const op = d.op as PlannedOp
        idempotency.push({ key: op.idempotencyKey, entity, recordId: d.recordId, operation: op.kind, externalId, version })
        audit.push({
          ...base,
          action: op.kind === "create" ? "provider_create" : "provider_update",
          actor: "concord",
          step: "write",
          detail: { externalId, version, idempotencyKey: op.idempotencyKey, fields: op.kind === "create" ? undefined : fieldsChanged(d.providerProjection as Json, op.target as Json) }
        })
        // What the provider normalised (numbers it assigned, totals it computed) flows back to the app.
        const sent = op.target as Obj
        if (d.canPull || g.source === "dependency") {
          const afterWrite = Merge.merge(sent as Json, (appTarget ?? Projection.project(d.loaded.app?.data ?? {}, spec)) as Json, providerProjection as Json, "provider_wins")
          if (afterWrite.appChanged) {
            appTarget = afterWrite.app as Obj
          }
        }
      }
      if (d.removed) {
        summary.written++
        const op = d.op as PlannedOp
        idempotency.push({ key: op.idempotencyKey, entity, recordId: d.recordId, operation: "remove", ...(externalId === undefined ? {} : { externalId }) })
        audit.push({ ...base, action: "provider_remove", actor: "concord", step: "write", detail: { externalId, idempotencyKey: op.idempotencyKey } })
      }

      // App side.
      const appBefore = d.loaded.app?.data as Obj | undefined
      if (d.pulled !== undefined) {
        summary.pulled++
        const full = d.pulled
        const valid = Canonical.validate(entity, full)
        if (!valid.ok) {
          const info = { tag: "ValidationError", message: `${connection.provider} ${entity} ${externalId} does not fit the canonical schema: ${valid.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}` }
          syncStates.push({ entity, recordId: d.recordId, status: "error", error: info })
          audit.push({ ...base, action: "sync_failed", actor: connection.provider, step: "resolve", detail: { error: info } })
          finish({ _tag: "Dead", error: info })
          continue
        }
        records.push({ entity, recordId: d.recordId, data: full, hash: Hash.contentHash(full), deleted: false, origin: connection.provider })
        audit.push({ ...base, action: "pull", actor: connection.provider, step: "resolve", detail: { externalId, created: true } })
        events.push({
          subject: subjects.changes(connection.tenantId, connection.provider, entity),
          payload: changeEvent(connection, entity, d.recordId, externalId, full, Object.keys(providerProjection ?? {}), at)
        })
        appTarget = undefined
      } else if (appTarget !== undefined && appBefore !== undefined) {
        const full = Projection.overlay(appBefore, appTarget, spec)
        const valid = Canonical.validate(entity, full)
        if (!valid.ok) {
          const info = { tag: "ValidationError", message: `merging ${connection.provider}'s change into ${entity} ${d.recordId} gives an invalid record: ${valid.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}` }
          syncStates.push({ entity, recordId: d.recordId, status: "error", error: info })
          audit.push({ ...base, action: "sync_failed", actor: "system", step: "resolve", detail: { error: info } })
          finish({ _tag: "Dead", error: info })
          continue
        }
        const changed = fieldsChanged(Projection.project(appBefore, spec) as Json, appTarget as Json)
        if (changed.length > 0) {
          summary.pulled++
          records.push({ entity, recordId: d.recordId, data: full, hash: Hash.contentHash(full), deleted: false, origin: connection.provider })
          audit.push({ ...base, action: "pull", actor: connection.provider, step: "resolve", detail: { externalId, fields: changed } })
          events.push({
            subject: subjects.changes(connection.tenantId, connection.provider, entity),
            payload: changeEvent(connection, entity, d.recordId, externalId, full, changed, at)
          })
          for (const s of siblings) {
            if (s.entities[entity] === undefined) continue
            events.push({ subject: subjects.inbound(connection.tenantId, s.provider, "system"), payload: resyncFor(connection.tenantId, s.id, entity, d.recordId) })
          }
        }
      }
      if (d.appDelete && appBefore !== undefined) {
        summary.pulled++
        records.push({ entity, recordId: d.recordId, data: appBefore, hash: Hash.contentHash(appBefore), deleted: true, origin: connection.provider })
        audit.push({ ...base, action: "pull_delete", actor: connection.provider, step: "resolve", detail: { externalId } })
        events.push({
          subject: subjects.changes(connection.tenantId, connection.provider, entity),
          payload: { type: "record.deleted", tenant: connection.tenantId, connectionId: connection.id, provider: connection.provider, entity, recordId: d.recordId, ...(externalId === undefined ? {} : { externalId }), changedFields: [], occurredAt: at } satisfies ChangeEvent
        })
      }

      // Link and base (rewritten only when they change: an echo of our own write changes nothing).
      if (externalId !== undefined && version !== undefined) {
        const link: Link = {
          entity,
          recordId: d.recordId,
          externalId,
          version,
          providerHash: providerProjection === undefined ? null : Projection.projectionHash(providerProjection),
          // Deleted there: removed now, found removed, or known removed and not read again (a redelivered delete).
          providerDeleted: d.removed || d.removedAtProvider || d.loaded.provider === null ||
            (d.loaded.provider === undefined && d.loaded.link?.providerDeleted === true),
          providerUpdatedAt
        }
        const old = d.loaded.link
        const same = old !== undefined && old.externalId === link.externalId && old.version === link.version &&
          old.providerHash === link.providerHash && old.providerDeleted === link.providerDeleted && old.providerUpdatedAt === link.providerUpdatedAt
        if (!same) links.push(link)
      }
      if (providerProjection !== undefined && !d.removed && d.loaded.provider !== null) {
        const appSide = appTarget ?? (d.loaded.app !== undefined && !d.loaded.app.deleted ? Projection.project(d.loaded.app.data, spec) : providerProjection)
        let next = Merge.agreed((d.nextBase ?? d.loaded.base?.data) as Json | undefined, appSide as Json, providerProjection as Json) as Obj | undefined
        // Fields under review keep their old base, so they stay conflicts until decided.
        for (const c of d.conflicts) {
          if (c.segments.length > 0) next = Path.set(next as Json, c.segments, Path.get(d.loaded.base?.data as Json, c.segments)) as Obj
        }
        if (next !== undefined && !Merge.equals(next as Json, d.loaded.base?.data as Json | undefined)) {
          bases.push({ entity, recordId: d.recordId, data: next, hash: Hash.contentHash(next) })
        }
      }

      // Conflicts.
      const before = openBefore.get(linkKey(entity, d.recordId)) ?? new Set<string>()
      if (before.size > 0) conflictScopes.push({ entity, recordId: d.recordId, openPaths: d.conflicts.map((c) => c.path) })
      for (const c of d.conflicts) {
        conflicts.push({ entity, recordId: d.recordId, path: c.path, segments: c.segments, base: c.base, app: c.app, provider: c.provider })
        if (!before.has(c.path)) {
          summary.conflicts++
          audit.push({ ...base, action: "conflict_opened", actor: "system", step: "resolve", detail: { path: c.path, base: c.base, app: c.app, provider: c.provider } })
          events.push({
            subject: subjects.conflicts(connection.tenantId, connection.provider),
            payload: {
              type: "conflict.opened",
              conflictId: "",
              tenant: connection.tenantId,
              connectionId: connection.id,
              provider: connection.provider,
              entity,
              recordId: d.recordId,
              path: c.path,
              ...(c.base === undefined ? {} : { base: c.base }),
              ...(c.app === undefined ? {} : { app: c.app }),
              ...(c.provider === undefined ? {} : { providerValue: c.provider }),
              occurredAt: at
            } satisfies ConflictEvent
          })
        }
      }
      for (const r of d.resolutions.filter((x) => x.outcome !== "open")) {
        audit.push({ ...base, action: "conflict_policy", actor: "system", step: "resolve", detail: { path: r.path, policy: r.policy, winner: r.outcome, app: r.app, provider: r.provider } })
      }
      const status: ItemStatus = d.conflicts.length > 0 ? "conflict" : "synced"
      syncStates.push({ entity, recordId: d.recordId, status })
      finish({ _tag: "Done", status, recordId: d.recordId, ...(externalId === undefined ? {} : { externalId }) })
    }

    yield* store.commit({
      tenantId: connection.tenantId,
      connectionId: connection.id,
      records,
      links,
      bases,
      syncStates,
      conflicts,
      conflictScopes,
      audit,
      events,
      idempotency,
      operations,
      ...checkpointOf(batch, summary, written.decisions.filter((d) => d.error?.info.tag === "PendingCreate").length)
    })
    yield* (yield* CrashPoint)("after-commit")
    return { outcomes, summary } satisfies BatchResult
  })

const checkpointOf = (batch: Batch, summary: BatchResult["summary"], waiting: number): { readonly backfill?: BackfillCheckpoint } => {
  const checkpoint = batch.checkpoint?.(summary, waiting)
  return checkpoint === undefined ? {} : { backfill: checkpoint }
}

const groupIds = (decisions: ReadonlyArray<Decision>): Map<EntityType, Array<string>> => {
  const out = new Map<EntityType, Array<string>>()
  for (const d of decisions) out.set(d.loaded.group.entity, [...(out.get(d.loaded.group.entity) ?? []), d.recordId])
  return out
}

const changeEvent = (
  connection: ConnectionInfo,
  entity: EntityType,
  recordId: string,
  externalId: string | undefined,
  record: unknown,
  changedFields: ReadonlyArray<string>,
  at: string
): ChangeEvent => ({
  type: "record.changed",
  tenant: connection.tenantId,
  connectionId: connection.id,
  provider: connection.provider,
  entity,
  recordId,
  ...(externalId === undefined ? {} : { externalId }),
  record,
  changedFields,
  occurredAt: at
})

const resyncFor = (tenant: string, connectionId: string, entity: EntityType, recordId: string): Resync => ({
  kind: "resync",
  tenant,
  connectionId,
  entity,
  recordId,
  reason: "changed by another connection"
})

// ---------------------------------------------------------------------------

const interpreted = Pipeline.interpret(SyncPipeline, {
  "fetch-both": fetchBoth,
  resolve,
  write,
  commit
}, {
  attributes: (input) => {
    const b = input as Batch
    return { "concord.connection": b.connection.id, "concord.tenant": b.connection.tenantId, "concord.provider": b.connection.provider }
  }
})

/**
 * Runs the pipeline for a batch of work on one connection. Never fails: every
 * work item gets an outcome (done, retry later, or dead-letter).
 */
export const runBatch = (
  connection: ConnectionInfo,
  session: ProviderSession,
  items: ReadonlyArray<WorkItem>,
  depth = 0,
  options?: { readonly checkpoint?: Batch["checkpoint"] }
): Effect.Effect<BatchResult, never, SyncStore> =>
  Effect.suspend((): Effect.Effect<BatchResult, never, SyncStore> => {
    // Waves by dependency rank: contacts commit (and get linked) before the
    // invoices of the same batch that refer to them are resolved.
    const waves = new Map<number, Array<Group>>()
    for (const g of groupItems(items)) waves.set(rank[g.entity] ?? 10, [...(waves.get(rank[g.entity] ?? 10) ?? []), g])
    const ordered = [...waves.entries()].sort(([a], [b]) => a - b).map(([, groups]) => groups)
    // A backfill checkpoint commits with the last wave (a page is one entity: one wave).
    const last = ordered[ordered.length - 1]
    return Effect.reduce(ordered, emptyResult, (acc, groups) =>
      runWave(connection, session, groups, depth, groups === last ? options?.checkpoint : undefined).pipe(Effect.map((r) => combine(acc, r))))
  })

const emptyResult = (): BatchResult => ({ outcomes: new Map(), summary: { written: 0, pulled: 0, conflicts: 0, failed: 0 } })

const combine = (a: BatchResult, b: BatchResult): BatchResult => ({
  outcomes: new Map([...a.outcomes, ...b.outcomes]),
  summary: {
    written: a.summary.written + b.summary.written,
    pulled: a.summary.pulled + b.summary.pulled,
    conflicts: a.summary.conflicts + b.summary.conflicts,
    failed: a.summary.failed + b.summary.failed
  }
})

const runWave = (
  connection: ConnectionInfo,
  session: ProviderSession,
  groups: ReadonlyArray<Group>,
  depth: number,
  checkpoint?: Batch["checkpoint"]
): Effect.Effect<BatchResult, never, SyncStore> =>
  interpreted({ connection, session, groups, depth, checkpoint }).pipe(
    // A failure of the whole batch (storage down, a bug) is retried; after the
    // inbound message's last attempt it goes to the DLQ with this error.
    Effect.catchCause((cause) => {
      const reason = cause.reasons[0]
      const info = errorInfo(reason === undefined ? "unknown failure" : reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : "interrupted")
      const outcomes = new Map<string, Outcome>()
      for (const g of groups) for (const k of g.keys) outcomes.set(k, { _tag: "Retry", error: info })
      return Effect.logWarning(`sync batch for connection ${connection.id} failed: ${info.message}`).pipe(
        Effect.as({ outcomes, summary: { written: 0, pulled: 0, conflicts: 0, failed: groups.length } } satisfies BatchResult)
      )
    })
  )

/** Reference data first: records are processed after the records they refer to. */
const rank: Readonly<Record<EntityType, number>> = {
  currency: 0,
  tax_rate: 1,
  account: 2,
  tracking_category: 3,
  contact: 4,
  item: 5,
  invoice: 6,
  bill: 6,
  credit_note: 6,
  vendor_credit: 6,
  sales_receipt: 6,
  refund: 7,
  expense: 6,
  journal_entry: 6,
  payment: 8,
  bill_payment: 8,
  deposit: 9,
  transfer: 6
}


/**
 * The connection cannot reach its provider (paused, needs re-authorisation):
 * keep the app's changes (they are the app's state) and park every record so
 * it syncs on resume, instead of hammering the provider or dead-lettering.
 */
export const parkBatch = (
  connection: ConnectionInfo,
  items: ReadonlyArray<WorkItem>,
  reason: string
): Effect.Effect<BatchResult, never, SyncStore> =>
  Effect.gen(function*() {
    const store = yield* SyncStore
    const groups = groupItems(items)
    const records: Array<Commit["records"][number]> = []
    const audit: Array<AuditEntry> = []
    const parked: Array<{ entity: EntityType; recordId?: string; externalId?: string; operationIds?: ReadonlyArray<string> }> = []
    for (const g of groups) {
      const change = g.appChange
      if (change !== undefined && g.recordId !== undefined) {
        // A delete carries no record: keep the stored one, marked deleted.
        const data = change.record ?? (yield* store.records(connection.tenantId, g.entity, [g.recordId])).get(g.recordId)?.data
        if (data !== undefined) {
          records.push({ entity: g.entity, recordId: g.recordId, data, hash: Hash.contentHash(data), deleted: change.deleted, appSeq: change.seq, origin: "app" })
        }
        for (const correlationId of g.operationIds.length > 0 ? g.operationIds : [g.correlationId ?? g.keys[0]]) {
          audit.push({
            connectionId: connection.id,
            entity: g.entity,
            recordId: g.recordId,
            ...(correlationId === undefined ? {} : { correlationId }),
            action: change.deleted ? "app_delete" : "app_change",
            actor: "app",
            step: "park",
            detail: { seq: change.seq, parked: reason }
          })
        }
      }
      parked.push({
        entity: g.entity,
        ...(g.recordId === undefined ? {} : { recordId: g.recordId }),
        ...(g.externalId === undefined ? {} : { externalId: g.externalId }),
        ...(g.operationIds.length === 0 ? {} : { operationIds: g.operationIds })
      })
    }
    yield* store.commit({ ...emptyCommitFor(connection), records, audit, parked })
    const outcomes = new Map<string, Outcome>()
    for (const g of groups) for (const k of g.keys) outcomes.set(k, { _tag: "Done", status: "skipped" })
    return { outcomes, summary: { written: 0, pulled: 0, conflicts: 0, failed: 0 } } satisfies BatchResult
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.succeed<BatchResult>({
        outcomes: new Map(items.map((i) => [i.key, { _tag: "Retry", error: errorInfo(cause.reasons[0]?._tag === "Fail" ? cause.reasons[0].error : "park failed") } as Outcome])),
        summary: { written: 0, pulled: 0, conflicts: 0, failed: items.length }
      })
    )
  )

const emptyCommitFor = (connection: ConnectionInfo): Commit => emptyCommit(connection.tenantId, connection.id)
