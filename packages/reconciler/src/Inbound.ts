/**
 * Messages on `CONCORD_IN` (`concord.in.<tenant>.<provider>.<source>`), decoded
 * with Schema at the consumer. A message that does not decode goes to the
 * DLQ with the reason, never half-processed.
 */
import { Canonical, Fields } from "@concord/core"
import { Schema } from "effect"

/** Tenant ids are subject tokens (`concord.in.<tenant>.…`). */
const TenantToken = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,64}$/, { message: "Expected a tenant id of 1-64 letters, digits, '_' or '-'" }))

/** The app changed (or deleted) a record. The record travels in the message. */
export const AppChange = Schema.Struct({
  kind: Schema.Literal("app_change"),
  tenant: TenantToken,
  connectionId: Fields.Id,
  entity: Canonical.EntityType,
  recordId: Schema.String,
  /** The record's new state; absent when `deleted`. */
  record: Schema.optionalKey(Schema.Unknown),
  deleted: Schema.optionalKey(Schema.Boolean),
  operationId: Schema.optionalKey(Schema.String),
  at: Schema.String
})
export type AppChange = typeof AppChange.Type

/** The provider says a record changed (a verified webhook or a poll); the actor re-reads it. */
export const ProviderChange = Schema.Struct({
  kind: Schema.Literal("provider_change"),
  tenant: TenantToken,
  connectionId: Fields.Id,
  entity: Canonical.EntityType,
  externalId: Schema.String,
  operation: Schema.String,
  occurredAt: Schema.String
})
export type ProviderChange = typeof ProviderChange.Type

/** Sync this record again from current state (conflict resolved, drift repair, replay, dependency). */
export const Resync = Schema.Struct({
  kind: Schema.Literal("resync"),
  tenant: TenantToken,
  connectionId: Fields.Id,
  entity: Canonical.EntityType,
  recordId: Schema.optionalKey(Schema.String),
  externalId: Schema.optionalKey(Schema.String),
  reason: Schema.String,
  /** Direction forced for drift repair under a policy: push the app state, or pull the provider's. */
  prefer: Schema.optionalKey(Schema.Literals(["app", "provider"])),
  operationId: Schema.optionalKey(Schema.String)
})
export type Resync = typeof Resync.Type

export const InboundMessage = Schema.Union([AppChange, ProviderChange, Resync])
export type InboundMessage = typeof InboundMessage.Type
