/**
 * Conflict policies: what happens when app and provider both changed the
 * same field since the last agreed base.
 *
 * - `app_wins`      the app's value is written to the provider;
 * - `provider_wins` the provider's value is written to the app;
 * - `review`        (default) neither side is written for that field and a
 *                   conflict is opened for a person to decide.
 *
 * A policy is set per tenant and entity, optionally refined per field
 * (`{ default: review, fields: { memo: app_wins, "customFields.Region": provider_wins } }`).
 */
import { Schema } from "effect"

export const Policy = Schema.Literals(["app_wins", "provider_wins", "review"]).pipe(
  Schema.annotate({ title: "ConflictPolicy" })
)
export type Policy = typeof Policy.Type

export const PolicySpec = Schema.Union([
  Policy,
  Schema.Struct({
    default: Policy,
    fields: Schema.optionalKey(Schema.Record(Schema.String, Policy))
  })
]).pipe(Schema.annotate({ title: "PolicySpec", description: "A policy, or a default policy with per-field overrides" }))
export type PolicySpec = typeof PolicySpec.Type

export const defaultPolicy: Policy = "review"

/**
 * The policy for a field path such as `lines[L1].amount` or
 * `customFields.Region`: the longest field override that is a prefix of the
 * path (at a `.` or `[` boundary), else the default.
 */
export const policyFor = (spec: PolicySpec | undefined, path: string): Policy => {
  if (spec === undefined) return defaultPolicy
  if (typeof spec === "string") return spec
  let best: { length: number; policy: Policy } | undefined
  for (const [prefix, policy] of Object.entries(spec.fields ?? {})) {
    const matches = path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`)
    if (matches && (best === undefined || prefix.length > best.length)) best = { length: prefix.length, policy }
  }
  return best?.policy ?? spec.default
}
