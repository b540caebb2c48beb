/**
 * Events Concord publishes on `CONCORD_EVENTS` (the public contract; their
 * JSON Schemas are generated into `deploy/schemas/`: `npm run schemas`).
 *
 * | subject | payload |
 * |---|---|
 * | `concord.changes.<tenant>.<provider>.<entity>` | `ChangeEvent` |
 * | `concord.conflicts.<tenant>.<provider>` | `ConflictEvent` |
 * | `concord.drift.<tenant>.<provider>` | `DriftEvent` |
 * | `concord.health.<tenant>.<provider>` | `HealthEvent` |
 *
 * Every message carries `Nats-Msg-Id` = its outbox id, so a consumer can
 * de-duplicate after a redelivery.
 */
import { Schema } from "effect"

const Json = Schema.Unknown

export const ChangeEvent = Schema.Struct({
  type: Schema.Literals(["record.changed", "record.deleted"]),
  tenant: Schema.String,
  connectionId: Schema.String,
  provider: Schema.String,
  entity: Schema.String,
  recordId: Schema.String,
  externalId: Schema.optionalKey(Schema.String),
  /** The record's new state in the app's id space (absent when deleted). */
  record: Schema.optionalKey(Json),
  /** Field paths the provider changed. */
  changedFields: Schema.Array(Schema.String),
  occurredAt: Schema.String
}).pipe(Schema.annotate({ identifier: "ChangeEvent", description: "A provider-side change that the app should apply (bidirectional correction)" }))
export type ChangeEvent = typeof ChangeEvent.Type

export const ConflictEvent = Schema.Struct({
  type: Schema.Literals(["conflict.opened", "conflict.resolved"]),
  conflictId: Schema.String,
  tenant: Schema.String,
  connectionId: Schema.String,
  provider: Schema.String,
  entity: Schema.String,
  recordId: Schema.String,
  path: Schema.String,
  base: Schema.optionalKey(Json),
  app: Schema.optionalKey(Json),
  providerValue: Schema.optionalKey(Json),
  resolution: Schema.optionalKey(Schema.Literals(["app", "provider", "merged"])),
  occurredAt: Schema.String
}).pipe(Schema.annotate({ identifier: "ConflictEvent", description: "Both sides changed a field differently; a person decides" }))
export type ConflictEvent = typeof ConflictEvent.Type

export const DriftCounts = Schema.Struct({
  missing_in_provider: Schema.Number,
  missing_in_app: Schema.Number,
  field_mismatch: Schema.Number,
  duplicate_in_provider: Schema.Number,
  unbalanced: Schema.Number,
  orphan_link: Schema.Number
})
export type DriftCounts = typeof DriftCounts.Type

export const DriftEvent = Schema.Struct({
  type: Schema.Literal("drift.found"),
  runId: Schema.String,
  tenant: Schema.String,
  connectionId: Schema.String,
  provider: Schema.String,
  counts: DriftCounts,
  /** HTTP path of the run's report. */
  link: Schema.String,
  occurredAt: Schema.String
}).pipe(Schema.annotate({ identifier: "DriftEvent", description: "A full-state reconciliation found differences no in-flight change explains" }))
export type DriftEvent = typeof DriftEvent.Type

export const HealthEvent = Schema.Struct({
  type: Schema.Literals(["connection.needs_reauth", "connection.paused", "connection.resumed", "connection.recovered", "connection.active"]),
  tenant: Schema.String,
  connectionId: Schema.String,
  provider: Schema.String,
  reason: Schema.optionalKey(Schema.String),
  occurredAt: Schema.String
}).pipe(Schema.annotate({ identifier: "HealthEvent", description: "A connection needs attention or changed state" }))
export type HealthEvent = typeof HealthEvent.Type

/** Subjects, relative to the deployment's prefix. */
export const subjects = {
  changes: (tenant: string, provider: string, entity: string) => `concord.changes.${tenant}.${provider}.${entity}`,
  conflicts: (tenant: string, provider: string) => `concord.conflicts.${tenant}.${provider}`,
  drift: (tenant: string, provider: string) => `concord.drift.${tenant}.${provider}`,
  health: (tenant: string, provider: string) => `concord.health.${tenant}.${provider}`,
  inbound: (tenant: string, provider: string, source: "app" | "webhook" | "poll" | "system") => `concord.in.${tenant}.${provider}.${source}`,
  dlq: (tenant: string, provider: string) => `concord.dlq.${tenant}.${provider}`
}

/** Tenant and connection ids double as subject tokens, so they are restricted to these characters. */
export const subjectToken = /^[A-Za-z0-9_-]{1,64}$/
