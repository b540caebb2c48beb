/**
 * Typed errors every provider adapter speaks. Each carries what a person
 * needs to act: provider, connection, entity, the provider's own code and
 * message, and whether retrying can help.
 */
import { Schema } from "effect"

/** The provider refused the request as invalid (QuickBooks ValidationFault, Xero ValidationErrors). */
export class ProviderRejected extends Schema.TaggedError<ProviderRejected>()("ProviderRejected", {
  provider: Schema.String,
  connectionId: Schema.String,
  entity: Schema.String,
  /** Our id of the record, or the provider's, when known. */
  recordId: Schema.optionalKey(Schema.String),
  /** The provider's error code ("6000", "ValidationException"). */
  code: Schema.String,
  /** The provider's message, verbatim. */
  providerMessage: Schema.String,
  /** The provider's detail text, verbatim. */
  detail: Schema.optionalKey(Schema.String),
  /** The provider field the error is about, when it says. */
  field: Schema.optionalKey(Schema.String),
  /** What to do about it. */
  hint: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    const what = this.recordId === undefined ? this.entity : `${this.entity} ${this.recordId}`
    const field = this.field === undefined ? "" : ` (field ${this.field})`
    const detail = this.detail === undefined || this.detail === this.providerMessage ? "" : `: ${this.detail}`
    const hint = this.hint === undefined ? "" : `; ${this.hint}`
    return `${this.provider} rejected ${what}${field}: [${this.code}] ${this.providerMessage}${detail}${hint}`
  }
}

/** The write was based on an out-of-date version (QuickBooks SyncToken 5010, Xero UpdatedDateUTC). Re-read and re-merge. */
export class StaleVersion extends Schema.TaggedError<StaleVersion>()("StaleVersion", {
  provider: Schema.String,
  connectionId: Schema.String,
  entity: Schema.String,
  externalId: Schema.String,
  sentVersion: Schema.String,
  currentVersion: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    return `${this.provider} ${this.entity} ${this.externalId} changed since version ${this.sentVersion}` +
      (this.currentVersion === undefined ? "" : ` (now ${this.currentVersion})`) + "; re-read and merge again"
  }
}

/** The record does not exist at the provider (or was deleted). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  provider: Schema.String,
  connectionId: Schema.String,
  entity: Schema.String,
  externalId: Schema.String
}) {
  override get message(): string {
    return `${this.provider} has no ${this.entity} ${this.externalId}`
  }
}

/** The provider's rate limit was hit; retry after the given delay. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  provider: Schema.String,
  connectionId: Schema.String,
  retryAfterMs: Schema.Number,
  /** Which limit ("minute", "day", "concurrent", "app"), when the provider says. */
  limit: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    return `${this.provider} rate limit${this.limit === undefined ? "" : ` (${this.limit})`} reached for connection ${this.connectionId}; retry in ${this.retryAfterMs} ms`
  }
}

/** Credentials were refused and cannot be refreshed: a person must re-authorise the connection. */
export class NeedsReauth extends Schema.TaggedError<NeedsReauth>()("NeedsReauth", {
  provider: Schema.String,
  connectionId: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.provider} connection ${this.connectionId} needs re-authorisation (${this.reason}); open the connect URL again`
  }
}

/** The provider failed or could not be reached (5xx, timeout, network): retryable. */
export class ProviderUnavailable extends Schema.TaggedError<ProviderUnavailable>()("ProviderUnavailable", {
  provider: Schema.String,
  connectionId: Schema.String,
  status: Schema.optionalKey(Schema.Number),
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.provider} is unavailable for connection ${this.connectionId}${this.status === undefined ? "" : ` (HTTP ${this.status})`}: ${this.reason}`
  }
}

/** The provider answered with something its documented wire format does not allow. */
export class ProviderProtocolError extends Schema.TaggedError<ProviderProtocolError>()("ProviderProtocolError", {
  provider: Schema.String,
  connectionId: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.provider} sent an unexpected response for connection ${this.connectionId}: ${this.reason}`
  }
}

/** A canonical record cannot be expressed in the provider's format (an unsupported entity or field value). */
export class Unsupported extends Schema.TaggedError<Unsupported>()("Unsupported", {
  provider: Schema.String,
  entity: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.provider} cannot store this ${this.entity}: ${this.reason}`
  }
}

/** An OAuth exchange or refresh failed for a reason other than a revoked grant. */
export class AuthFailed extends Schema.TaggedError<AuthFailed>()("AuthFailed", {
  provider: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.provider} authorisation failed: ${this.reason}`
  }
}

export type ProviderError =
  | ProviderRejected
  | StaleVersion
  | NotFound
  | RateLimited
  | NeedsReauth
  | ProviderUnavailable
  | ProviderProtocolError
  | Unsupported

/** Errors a later attempt can get past without anyone changing anything. */
export const isRetryable = (e: { readonly _tag: string }): boolean =>
  e._tag === "RateLimited" || e._tag === "ProviderUnavailable" || e._tag === "StaleVersion"
