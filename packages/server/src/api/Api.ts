/**
 * The HTTP API, defined once with `effect/http-api`: the server implements
 * it, `/openapi.json` and `/docs` are generated from it, and the CLI derives
 * its client from it.
 */
import { Canonical, Validation } from "@concord/core"
import { Context, Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "effect/http-api"

// ---------------------------------------------------------------------------
// Errors

const Issues = Schema.Array(Validation.FieldIssue)

/** The request does not parse (bad JSON, bad path or query parameter). */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String,
  issues: Issues
}, { httpApiStatus: 400 }) {}

/** The request parses but its content is refused; `issues` names every bad field. */
export class Unprocessable extends Schema.TaggedError<Unprocessable>()("Unprocessable", {
  message: Schema.String,
  issues: Issues
}, { httpApiStatus: 422 }) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  message: Schema.String
}, { httpApiStatus: 403 }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** A dependency (NATS, Postgres) is down: nothing was stored; retry. */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  message: Schema.String
}, { httpApiStatus: 503 }) {}

// ---------------------------------------------------------------------------
// Authentication

/** Who is calling: an operator (admin key) or one tenant (its key). */
export type Caller =
  | { readonly kind: "admin"; readonly keyId: string }
  | { readonly kind: "tenant"; readonly tenantId: string; readonly keyId: string }

export class CurrentCaller extends Context.Service<CurrentCaller, Caller>()("concord/server/CurrentCaller") {}

export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentCaller }>()("concord/server/Authentication", {
  security: { apiKey: HttpApiSecurity.bearer },
  error: Unauthorized
}) {}

/** Turns request-decoding failures into 400s that name each bad field. */
export class RequestErrors extends HttpApiMiddleware.Service<RequestErrors>()("concord/server/RequestErrors", {
  error: BadRequest
}) {}

// ---------------------------------------------------------------------------
// Shapes

export const TenantId = Schema.String.check(
  Schema.makeFilter((s: string) => /^[A-Za-z0-9_-]{1,64}$/.test(s) || "Expected 1-64 letters, digits, '_' or '-'")
)
export const EntityParam = Canonical.EntityType
// Control characters are refused up front: Postgres cannot store NUL in text, and no id or filter needs them.
const controlCharacter = /[\u0000-\u001f\u007f]/
const IdParam = Schema.String.check(
  Schema.makeFilter((s: string) => (s.length >= 1 && s.length <= 128 && !controlCharacter.test(s)) || "Expected an id of 1-128 characters, none of them a control character")
)
/** A free-text query parameter. */
const QueryText = Schema.String.check(Schema.makeFilter((s: string) => (s.length <= 1024 && !controlCharacter.test(s)) || "Expected at most 1024 characters, none of them a control character"))

export const ConnectionView = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  provider: Schema.String,
  accountId: Schema.NullOr(Schema.String),
  status: Schema.Literals(["pending_auth", "active", "paused", "needs_reauth"]),
  statusReason: Schema.NullOr(Schema.String),
  entities: Schema.Unknown,
  updatedAt: Schema.String
}).pipe(Schema.annotate({ identifier: "Connection" }))
export type ConnectionView = typeof ConnectionView.Type

export const PollingView = Schema.Struct({
  entities: Schema.Array(Schema.String),
  safetyEntities: Schema.Array(Schema.String),
  intervalMs: Schema.Number,
  floorMs: Schema.Number,
  ceilingMs: Schema.Number,
  safetyMs: Schema.Number,
  lastPollAt: Schema.NullOr(Schema.String),
  lastChanges: Schema.NullOr(Schema.Number),
  nextPollAt: Schema.NullOr(Schema.String),
  nextSafetyAt: Schema.NullOr(Schema.String),
  polls: Schema.Number,
  lastError: Schema.NullOr(Schema.String)
}).pipe(Schema.annotate({
  identifier: "Polling",
  description: "Change-feed polling: entities without webhooks at an interval that adapts between floor and ceiling; entities with webhooks at the safety interval"
}))

export const ConnectionStatusView = Schema.Struct({
  ...ConnectionView.fields,
  records: Schema.Struct({ synced: Schema.Number, conflict: Schema.Number, error: Schema.Number, skipped: Schema.Number }),
  openConflicts: Schema.Number,
  parked: Schema.Number,
  lastErrors: Schema.Array(Schema.Struct({ entity: Schema.String, recordId: Schema.String, error: Schema.Unknown, at: Schema.String })),
  /** Absent when the connection has nothing to poll (or is not active yet). */
  polling: Schema.optionalKey(PollingView)
}).pipe(Schema.annotate({ identifier: "ConnectionStatus" }))

export const TenantView = Schema.Struct({
  tenant: Schema.String,
  name: Schema.NullOr(Schema.String),
  config: Schema.Unknown,
  connections: Schema.Array(ConnectionView)
}).pipe(Schema.annotate({ identifier: "Tenant" }))

export const Accepted = Schema.Struct({
  operationId: Schema.String,
  status: Schema.Literals(["accepted", "succeeded"]),
  entity: Schema.String,
  recordId: Schema.String,
  /** The connections the change goes to. */
  connections: Schema.Array(Schema.String),
  /** For transactions: the GL rule that posted it. */
  rule: Schema.optionalKey(Schema.String),
  /** Link to follow completion. */
  link: Schema.String
}).pipe(Schema.annotate({ identifier: "Accepted" }))

export const SyncView = Schema.Struct({
  connectionId: Schema.String,
  provider: Schema.String,
  externalId: Schema.NullOr(Schema.String),
  providerVersion: Schema.NullOr(Schema.String),
  status: Schema.String,
  lastError: Schema.NullOr(Schema.Unknown),
  openConflicts: Schema.Number
})

export const RecordView = Schema.Struct({
  entity: Schema.String,
  id: Schema.String,
  record: Schema.Unknown,
  deleted: Schema.Boolean,
  origin: Schema.String,
  updatedAt: Schema.String,
  sync: Schema.Array(SyncView)
}).pipe(Schema.annotate({ identifier: "Record" }))
export type RecordView = typeof RecordView.Type

export const RecordPage = Schema.Struct({
  items: Schema.Array(RecordView),
  next: Schema.NullOr(Schema.String)
})

export const OperationView = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  kind: Schema.String,
  status: Schema.Literals(["accepted", "succeeded", "failed", "conflict"]),
  expected: Schema.Number,
  done: Schema.Number,
  failed: Schema.Number,
  items: Schema.Array(Schema.Struct({
    connectionId: Schema.String,
    entity: Schema.String,
    recordId: Schema.String,
    status: Schema.String,
    detail: Schema.NullOr(Schema.Unknown)
  })),
  createdAt: Schema.String
}).pipe(Schema.annotate({ identifier: "Operation" }))
export type OperationView = typeof OperationView.Type

export const ConflictView = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  connectionId: Schema.String,
  entity: Schema.String,
  recordId: Schema.String,
  path: Schema.String,
  base: Schema.NullOr(Schema.Unknown),
  app: Schema.NullOr(Schema.Unknown),
  provider: Schema.NullOr(Schema.Unknown),
  status: Schema.String,
  resolution: Schema.NullOr(Schema.String),
  resolvedValue: Schema.NullOr(Schema.Unknown),
  openedAt: Schema.String,
  resolvedAt: Schema.NullOr(Schema.String),
  ageSeconds: Schema.Number
}).pipe(Schema.annotate({ identifier: "Conflict" }))
export type ConflictView = typeof ConflictView.Type

export const ResolveRequest = Schema.Struct({
  resolution: Schema.Literals(["app", "provider", "merged"]),
  /** The value to keep, for `merged`. */
  value: Schema.optionalKey(Schema.Unknown)
})

export const CredentialsRequest = Schema.Struct({
  accountId: Schema.String,
  accessToken: Schema.String,
  refreshToken: Schema.String,
  /** Seconds until the access token expires. */
  expiresIn: Schema.Int.check(Schema.isGreaterThan(0)),
  refreshExpiresIn: Schema.optionalKey(Schema.Int),
  /** API base URL override (a sandbox). */
  baseUrl: Schema.optionalKey(Schema.String)
})

export const AuditVerifyView = Schema.Struct({
  tenant: Schema.String,
  rows: Schema.Number,
  ok: Schema.Boolean,
  brokenAt: Schema.optionalKey(Schema.Struct({ seq: Schema.Number, reason: Schema.String }))
})

export const AuditRowView = Schema.Struct({
  seq: Schema.Number,
  at: Schema.String,
  connectionId: Schema.NullOr(Schema.String),
  entity: Schema.NullOr(Schema.String),
  recordId: Schema.NullOr(Schema.String),
  action: Schema.String,
  actor: Schema.String,
  correlationId: Schema.NullOr(Schema.String),
  detail: Schema.Unknown,
  hash: Schema.String
})

const record = Schema.Unknown.pipe(Schema.annotate({
  description: "A canonical record (see deploy/schemas/canonical-record.schema.json); `entity`, `id` and `schemaVersion` default to the path's"
}))
const transaction = Schema.Unknown.pipe(Schema.annotate({
  description: "A POS/payment transaction (see deploy/schemas/transaction.schema.json)"
}))
const tenantDocument = Schema.Unknown.pipe(Schema.annotate({
  description: "The tenant's configuration as JSON (see deploy/tenant-config.schema.json)"
}))

// ---------------------------------------------------------------------------
// Groups

const t = { tenant: TenantId }

export const TenantsGroup = HttpApiGroup.make("tenants")
  .add(HttpApiEndpoint.put("putTenant", "/v1/tenants/:tenant", {
    params: t,
    payload: [tenantDocument, Schema.String.pipe(HttpApiSchema.asText({ contentType: "application/yaml" }))],
    success: TenantView,
    error: [Unprocessable, Forbidden]
  }))
  .add(HttpApiEndpoint.get("getTenant", "/v1/tenants/:tenant", { params: t, success: TenantView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.post("createKey", "/v1/tenants/:tenant/keys", {
    params: t,
    payload: Schema.Struct({ label: Schema.optionalKey(Schema.String) }),
    success: Schema.Struct({ keyId: Schema.String, key: Schema.String }).pipe(HttpApiSchema.status(201)),
    error: [NotFound, Forbidden]
  }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Tenants, their configuration and their API keys (operators)")

const tc = { tenant: TenantId, connection: IdParam }

export const ConnectionsGroup = HttpApiGroup.make("connections")
  .add(HttpApiEndpoint.get("listConnections", "/v1/tenants/:tenant/connections", { params: t, success: Schema.Array(ConnectionView), error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.get("getConnection", "/v1/tenants/:tenant/connections/:connection", { params: tc, success: ConnectionStatusView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.post("connect", "/v1/tenants/:tenant/connections/:connection/connect", {
    params: tc,
    success: Schema.Struct({ url: Schema.String, state: Schema.String }),
    error: [NotFound, Forbidden, Unprocessable]
  }))
  .add(HttpApiEndpoint.put("setCredentials", "/v1/tenants/:tenant/connections/:connection/credentials", {
    params: tc,
    payload: CredentialsRequest,
    success: ConnectionView,
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.post("pause", "/v1/tenants/:tenant/connections/:connection/pause", {
    params: tc,
    payload: Schema.Struct({ reason: Schema.optionalKey(Schema.String) }),
    success: ConnectionView,
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.post("resume", "/v1/tenants/:tenant/connections/:connection/resume", {
    params: tc,
    success: Schema.Struct({ connection: ConnectionView, resynced: Schema.Number }),
    error: [NotFound, Forbidden, Conflict, Unavailable]
  }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Connections to accounting providers: connect (OAuth), pause, resume, status")

const ter = { tenant: TenantId, entity: EntityParam, id: IdParam }

export const RecordsGroup = HttpApiGroup.make("records")
  .add(HttpApiEndpoint.put("putRecord", "/v1/tenants/:tenant/records/:entity/:id", {
    params: ter,
    payload: record,
    success: [Accepted.pipe(HttpApiSchema.status(202))],
    error: [Unprocessable, NotFound, Forbidden, Unavailable]
  }))
  .add(HttpApiEndpoint.delete("deleteRecord", "/v1/tenants/:tenant/records/:entity/:id", {
    params: ter,
    success: Accepted.pipe(HttpApiSchema.status(202)),
    error: [NotFound, Forbidden, Unavailable]
  }))
  .add(HttpApiEndpoint.get("getRecord", "/v1/tenants/:tenant/records/:entity/:id", { params: ter, success: RecordView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.get("listRecords", "/v1/tenants/:tenant/records/:entity", {
    params: { tenant: TenantId, entity: EntityParam },
    query: { limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 }))), after: Schema.optionalKey(QueryText) },
    success: RecordPage,
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.post("postTransaction", "/v1/tenants/:tenant/transactions", {
    params: t,
    payload: transaction,
    success: Accepted.pipe(HttpApiSchema.status(202)),
    error: [Unprocessable, NotFound, Forbidden, Unavailable]
  }))
  .add(HttpApiEndpoint.get("getOperation", "/v1/operations/:id", { params: { id: IdParam }, success: OperationView, error: [NotFound, Forbidden] }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The app's records, POS/payment transactions, and the operations that track them")

const tid = { tenant: TenantId, id: IdParam }

export const ConflictsGroup = HttpApiGroup.make("conflicts")
  .add(HttpApiEndpoint.get("listConflicts", "/v1/tenants/:tenant/conflicts", {
    params: t,
    query: { status: Schema.optionalKey(Schema.Literals(["open", "resolved", "superseded", "all"])) },
    success: Schema.Array(ConflictView),
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.get("getConflict", "/v1/tenants/:tenant/conflicts/:id", { params: tid, success: ConflictView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.post("resolveConflict", "/v1/tenants/:tenant/conflicts/:id/resolve", {
    params: tid,
    payload: ResolveRequest,
    success: Schema.Struct({ conflict: ConflictView, outcome: Schema.Unknown }),
    error: [NotFound, Forbidden, Conflict, Unprocessable, Unavailable]
  }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Conflicts waiting for a person: both sides changed a field differently")

export const AuditGroup = HttpApiGroup.make("audit")
  .add(HttpApiEndpoint.get("verifyAudit", "/v1/tenants/:tenant/audit/verify", { params: t, success: AuditVerifyView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.get("listAudit", "/v1/tenants/:tenant/audit", {
    params: t,
    query: {
      entity: Schema.optionalKey(QueryText),
      recordId: Schema.optionalKey(QueryText),
      after: Schema.optionalKey(Schema.NumberFromString),
      limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 })))
    },
    success: Schema.Array(AuditRowView),
    error: [NotFound, Forbidden]
  }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The append-only, hash-chained audit log")

// Backfills (src/Backfills.ts)

export const BackfillStatus = Schema.Literals(["running", "completed", "failed", "cancelled"])
export type BackfillStatus = typeof BackfillStatus.Type

export const BackfillView = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  connection: Schema.String,
  entity: Schema.String,
  status: BackfillStatus,
  /** Only records changed since then (null: all history). */
  since: Schema.NullOr(Schema.String),
  pageSize: Schema.Number,
  pages: Schema.Number,
  /** Records listed and processed so far: imported + skipped (already linked) + failed. */
  done: Schema.Number,
  /** How many records the provider has in the window (null when it cannot count). */
  total: Schema.NullOr(Schema.Number),
  imported: Schema.Number,
  skipped: Schema.Number,
  failed: Schema.Number,
  /** Records per second since it started. */
  rate: Schema.NullOr(Schema.Number),
  etaSeconds: Schema.NullOr(Schema.Number),
  /** Why it failed, or what it is waiting for while running. */
  error: Schema.NullOr(Schema.String),
  startedAt: Schema.String,
  updatedAt: Schema.String,
  finishedAt: Schema.NullOr(Schema.String)
}).pipe(Schema.annotate({ identifier: "Backfill" }))
export type BackfillView = typeof BackfillView.Type

export const StartBackfill = Schema.Struct({
  /** Entities to import (default: the connection's `backfill.entities`, else every entity it pulls). */
  entities: Schema.optionalKey(Schema.Array(Schema.String)),
  /** Only records changed on or after this date (YYYY-MM-DD or an RFC 3339 instant). */
  since: Schema.optionalKey(Schema.String),
  /** …or in the last this many years. */
  years: Schema.optionalKey(Schema.Number),
  /** Records per provider page (default 500; the provider may cap it). */
  pageSize: Schema.optionalKey(Schema.Number)
}).pipe(Schema.annotate({ identifier: "StartBackfill" }))
export type StartBackfill = typeof StartBackfill.Type

export const BackfillsGroup = HttpApiGroup.make("backfills")
  .add(HttpApiEndpoint.post("startBackfill", "/v1/tenants/:tenant/connections/:connection/backfills", {
    params: tc,
    payload: StartBackfill,
    success: Schema.Struct({ backfills: Schema.Array(BackfillView) }).pipe(HttpApiSchema.status(202)),
    error: [NotFound, Forbidden, Unprocessable, Conflict]
  }))
  .add(HttpApiEndpoint.get("listBackfills", "/v1/tenants/:tenant/backfills", {
    params: t,
    query: { connection: Schema.optionalKey(IdParam) },
    success: Schema.Array(BackfillView),
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.get("getBackfill", "/v1/tenants/:tenant/backfills/:id", { params: tid, success: BackfillView, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.post("cancelBackfill", "/v1/tenants/:tenant/backfills/:id/cancel", {
    params: tid,
    success: BackfillView,
    error: [NotFound, Forbidden, Conflict]
  }))
  .add(HttpApiEndpoint.get("allBackfills", "/v1/backfills", {
    query: { status: Schema.optionalKey(BackfillStatus) },
    success: Schema.Array(BackfillView),
    error: Forbidden
  }))
  .add(HttpApiEndpoint.get("findBackfill", "/v1/backfills/:id", { params: { id: IdParam }, success: BackfillView, error: [NotFound, Forbidden] }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Resumable imports of a provider's history, per connection and entity: start, progress (done/total, rate, ETA), cancel. /v1/backfills lists every tenant's (admin key) or the key's tenant's")

// Drift: full-state reconciliation runs and their items (src/Drift.ts)

export const DriftKind = Schema.Literals(["missing_in_provider", "missing_in_app", "field_mismatch", "duplicate_in_provider", "unbalanced", "orphan_link"])

export const DriftCountsView = Schema.Struct({
  missing_in_provider: Schema.Number,
  missing_in_app: Schema.Number,
  field_mismatch: Schema.Number,
  duplicate_in_provider: Schema.Number,
  unbalanced: Schema.Number,
  orphan_link: Schema.Number
})

export const DriftRunView = Schema.Struct({
  id: Schema.String,
  tenant: Schema.String,
  connection: Schema.String,
  provider: Schema.String,
  /** `feed_gap`: started by the poller when a provider's change feed could not reach back to the cursor. */
  trigger: Schema.Literals(["scheduled", "manual", "feed_gap"]),
  requestedBy: Schema.String,
  status: Schema.Literals(["running", "completed", "failed"]),
  entities: Schema.Array(Schema.String),
  /** What a running run is doing ("provider contact", "app invoice", "settling", …). */
  phase: Schema.NullOr(Schema.String),
  /** Provider records listed and app records/links read so far. */
  providerRecords: Schema.Number,
  appRecords: Schema.Number,
  counts: DriftCountsView,
  /** Items found: the sum of counts. */
  total: Schema.Number,
  /** Differences found while streaming that in-flight work explained when re-checked (not drift). */
  explained: Schema.Number,
  /** Items auto-resolved under the entity's policy (re-pushed, pulled, or opened as conflicts). */
  resolved: Schema.Number,
  error: Schema.NullOr(Schema.String),
  startedAt: Schema.String,
  finishedAt: Schema.NullOr(Schema.String),
  /** HTTP path of this run's report. */
  link: Schema.String
}).pipe(Schema.annotate({ identifier: "DriftRun" }))
export type DriftRunView = typeof DriftRunView.Type

export const DriftItemView = Schema.Struct({
  id: Schema.Number,
  entity: Schema.String,
  recordId: Schema.NullOr(Schema.String),
  externalId: Schema.NullOr(Schema.String),
  kind: DriftKind,
  /** Differing fields with the app's and the provider's value. */
  fields: Schema.Array(Schema.Struct({ path: Schema.String, app: Schema.optionalKey(Schema.Unknown), provider: Schema.optionalKey(Schema.Unknown) })),
  detail: Schema.NullOr(Schema.Unknown),
  /** How it was auto-resolved (null: not resolved). */
  resolution: Schema.NullOr(Schema.Literals(["repush", "pull", "conflict", "review"])),
  resolvedAt: Schema.NullOr(Schema.String)
}).pipe(Schema.annotate({ identifier: "DriftItem" }))
export type DriftItemView = typeof DriftItemView.Type

export const DriftRunDetail = Schema.Struct({
  run: DriftRunView,
  items: Schema.Array(DriftItemView),
  /** Items of the run (matching the kind filter). */
  totalItems: Schema.Number,
  /** Pass as `offset` for the next page; null on the last page. */
  nextOffset: Schema.NullOr(Schema.Number)
}).pipe(Schema.annotate({ identifier: "DriftRunDetail" }))
export type DriftRunDetail = typeof DriftRunDetail.Type

export const ReconcileRequest = Schema.Struct({
  /** Entities to reconcile (default: the connection's `reconciliation.entities`, else every enabled entity). */
  entities: Schema.optionalKey(Schema.Array(Schema.String))
}).pipe(Schema.annotate({ identifier: "ReconcileRequest" }))
export type ReconcileRequest = typeof ReconcileRequest.Type

const PageQuery = {
  offset: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))),
  limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  kind: Schema.optionalKey(DriftKind)
}

export const DriftGroup = HttpApiGroup.make("drift")
  .add(HttpApiEndpoint.post("reconcileNow", "/v1/tenants/:tenant/connections/:connection/drift/reconcile", {
    params: tc,
    payload: ReconcileRequest,
    success: DriftRunView.pipe(HttpApiSchema.status(202)),
    error: [NotFound, Forbidden, Unprocessable, Conflict]
  }))
  .add(HttpApiEndpoint.get("listDriftRuns", "/v1/tenants/:tenant/drift/runs", {
    params: t,
    query: {
      connection: Schema.optionalKey(IdParam),
      limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 })))
    },
    success: Schema.Array(DriftRunView),
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.get("getDriftRun", "/v1/tenants/:tenant/drift/runs/:id", { params: tid, query: PageQuery, success: DriftRunDetail, error: [NotFound, Forbidden] }))
  .add(HttpApiEndpoint.get("allDriftRuns", "/v1/drift/runs", {
    query: {
      tenant: Schema.optionalKey(TenantId),
      limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 1000 })))
    },
    success: Schema.Array(DriftRunView),
    error: [NotFound, Forbidden]
  }))
  .add(HttpApiEndpoint.get("findDriftRun", "/v1/drift/runs/:id", { params: { id: IdParam }, query: PageQuery, success: DriftRunDetail, error: [NotFound, Forbidden] }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Full-state reconciliation: start a run now, list runs, read a run's drift items (paged). /v1/drift/runs spans every tenant (admin key) or the key's tenant")

/** Views across tenants, for operators (admin key only); see src/api/Operators.ts. */
export const OperatorsGroup = HttpApiGroup.make("operators")
  .add(HttpApiEndpoint.get("allConnections", "/v1/connections", {
    query: {
      tenant: Schema.optionalKey(TenantId),
      status: Schema.optionalKey(ConnectionView.fields.status)
    },
    success: Schema.Array(ConnectionView),
    error: Forbidden
  }))
  .add(HttpApiEndpoint.get("allConflicts", "/v1/conflicts", {
    query: {
      status: Schema.optionalKey(Schema.Literals(["open", "resolved", "superseded", "all"])),
      limit: Schema.optionalKey(Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 10000 })))
    },
    success: Schema.Array(ConflictView),
    error: Forbidden
  }))
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Operators' views across every tenant (admin key)")

export const PublicGroup = HttpApiGroup.make("public")
  .add(HttpApiEndpoint.post("webhook", "/webhooks/:provider", {
    params: { provider: Schema.String },
    // The signature is over the exact bytes, so the body is taken raw whatever its type.
    payload: ["application/json", "application/cloudevents-batch+json", "application/octet-stream", "text/plain"].map((contentType) =>
      Schema.Uint8Array.pipe(HttpApiSchema.asUint8Array({ contentType }))
    ) as [typeof Schema.Uint8Array, ...Array<typeof Schema.Uint8Array>],
    success: Schema.Void,
    error: [Unauthorized, NotFound, Unavailable]
  }))
  .add(HttpApiEndpoint.get("oauthCallback", "/v1/oauth/:provider/callback", {
    params: { provider: Schema.String },
    // Whatever the provider adds (code, state, realmId, error…): printable, and no longer than any provider sends.
    query: Schema.Record(Schema.String, Schema.String.check(
      Schema.makeFilter((s: string) => (s.length <= 4096 && !controlCharacter.test(s)) || "Expected at most 4096 characters, none of them a control character")
    )),
    success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/html" })),
    error: [Unprocessable, NotFound]
  }))
  .add(HttpApiEndpoint.get("healthz", "/healthz", { success: Schema.Struct({ status: Schema.Literal("ok") }) }))
  .add(HttpApiEndpoint.get("readyz", "/readyz", {
    success: Schema.Struct({ status: Schema.Literal("ready"), checks: Schema.Record(Schema.String, Schema.String) }),
    error: Unavailable
  }))
  .annotate(OpenApi.Description, "Provider webhooks (signature-verified), the OAuth callback, and health probes")

export class Api extends HttpApi.make("concord")
  .add(TenantsGroup)
  .add(ConnectionsGroup)
  .add(RecordsGroup)
  .add(ConflictsGroup)
  .add(AuditGroup)
  .add(OperatorsGroup)
  .add(BackfillsGroup)
  .add(DriftGroup)
  .add(PublicGroup)
  .middleware(RequestErrors)
  .annotateMerge(OpenApi.annotations({
    title: "Concord",
    version: "0.1.0",
    description: "Bidirectional sync and reconciliation between your platform and your customers' accounting providers."
  }))
{}

