/**
 * Per-tenant configuration, written in YAML:
 *
 * ```yaml
 * version: 1
 * tenant: acme
 * connections:
 *   - id: acme-qbo
 *     provider: quickbooks
 *     entities:
 *       invoice: { direction: both, policy: review }
 *       journal_entry: { direction: push }
 *     mapping:
 *       invoice:
 *         customFields: { order_id: "Order ID" }
 *     reconciliation: { schedule: "0 3 * * *" }
 *     polling: { floor: 30s, ceiling: 15m }
 *     backfill: { since: 2023-01-01 }
 * glRules:
 *   - name: card-sales
 *     match: { type: sale, tender: card }
 *     accounts: { clearing: "1210", revenue: "4000", tax: "2200", tips: "2300" }
 * ```
 *
 * Decoding refuses invalid config with every bad field, its YAML path and
 * its line. A JSON Schema for editors is generated from the same schema
 * (`deploy/tenant-config.schema.json`).
 */
import { Cron, Effect, JsonSchema, Result, Schema, SchemaGetter, SchemaIssue } from "effect"
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node as YamlNode, type Document } from "yaml"
import { EntityType } from "./Canonical.ts"
import { Id, LocalDate } from "./Fields.ts"
import { GlRule } from "./Ledger.ts"
import { PolicySpec } from "./Policy.ts"
import { type FieldIssue, decodeEither } from "./Validation.ts"

// ---------------------------------------------------------------------------
// Durations and schedules

const units: Record<string, number> = {
  ms: 1, millis: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000
}

/** Milliseconds from "30s", "15m", "1h", "2 days", "500ms"; undefined when it is not a duration. */
export const parseDuration = (text: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text)
  if (m === null) return undefined
  const unit = units[(m[2] ?? "").toLowerCase()]
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit)
}

/** A duration written as text ("30s", "15m", "1h"), decoded to milliseconds. */
export const DurationText = Schema.String.pipe(
  Schema.decodeTo(Schema.Number, {
    decode: SchemaGetter.transformEffect((s: string) => {
      const ms = parseDuration(s)
      return ms === undefined
        ? Effect.fail(new SchemaIssue.InvalidValue({ message: `Expected a duration such as "30s", "15m", "1h" or "2 days", got ${JSON.stringify(s)}` }, s))
        : Effect.succeed(ms)
    }),
    encode: SchemaGetter.transform((ms: number) => `${ms}ms`)
  }),
  Schema.annotate({ title: "Duration", description: "A duration such as 30s, 15m, 1h, 2 days" })
)

/** A five-field cron expression, evaluated in UTC. */
export const CronText = Schema.String.check(
  Schema.makeFilter((s: string) => {
    const r = Cron.parse(s)
    return Result.isSuccess(r) || `Expected a cron expression such as "0 3 * * *" (minute hour day month weekday): ${Result.isFailure(r) ? r.failure.message : ""}`
  })
).pipe(Schema.annotate({ title: "Cron", description: "minute hour day-of-month month day-of-week, UTC" }))

// ---------------------------------------------------------------------------
// The tenant document

export const Direction = Schema.Literals(["push", "pull", "both"]).pipe(
  Schema.annotate({ description: "push: app → provider; pull: provider → app; both: bidirectional" })
)
export type Direction = typeof Direction.Type

export const EntitySettings = Schema.Struct({
  direction: Direction,
  policy: Schema.optionalKey(PolicySpec)
}).pipe(Schema.annotate({ identifier: "EntitySettings" }))
export type EntitySettings = typeof EntitySettings.Type

export const EntityMapping = Schema.Struct({
  /** App custom field name → the provider's custom field name (or definition id). */
  customFields: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  /** Values filled in when the app leaves a top-level field out. */
  defaults: Schema.optionalKey(Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Finite, Schema.Boolean]))),
  /** Top-level fields never written to the provider (the app keeps them to itself). */
  exclude: Schema.optionalKey(Schema.Array(Schema.String))
}).pipe(Schema.annotate({ identifier: "EntityMapping" }))
export type EntityMapping = typeof EntityMapping.Type

export const Reconciliation = Schema.Struct({
  schedule: CronText,
  /** Entities to reconcile (default: every enabled entity). */
  entities: Schema.optionalKey(Schema.Array(EntityType)),
  /** Fix what the policy allows without asking (default true). */
  autoResolve: Schema.optionalKey(Schema.Boolean)
})

export const Polling = Schema.Struct({
  /** Shortest interval between polls of a busy connection. */
  floor: DurationText,
  /** Longest interval between polls of a quiet connection. */
  ceiling: DurationText,
  /** Slow safety poll for connections with webhooks (they get lost); default 1h. */
  safety: Schema.optionalKey(DurationText)
}).check(
  Schema.makeFilter((p: { readonly floor: number; readonly ceiling: number }) =>
    p.floor <= p.ceiling || { path: ["ceiling"], issue: "ceiling must not be shorter than floor" }
  )
).pipe(Schema.annotate({
  identifier: "Polling",
  description: "Change-feed polling of entities without webhooks: the interval halves towards floor when a poll finds changes and grows by half towards ceiling when it finds none. Entities with webhooks are polled every safety interval. Without this section: floor 30s, ceiling 15m, safety 1h."
}))

export const Backfill = Schema.Struct({
  /** Import history from this date. */
  since: Schema.optionalKey(LocalDate),
  /** …or this many years back. */
  years: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 30 }))),
  entities: Schema.optionalKey(Schema.Array(EntityType))
}).check(
  Schema.makeFilter((b: { readonly since?: string; readonly years?: number }) =>
    (b.since === undefined) !== (b.years === undefined) || "Expected exactly one of since or years"
  )
)

export const ProviderId = Schema.String.check(
  Schema.makeFilter((s: string) => /^[a-z][a-z0-9_]{1,31}$/.test(s) || "Expected a provider id such as quickbooks or xero")
)

export const ConnectionConfig = Schema.Struct({
  id: Id,
  provider: ProviderId,
  /** The provider account (QuickBooks realm id, Xero tenant id); usually set by the OAuth callback. */
  account: Schema.optionalKey(Schema.String),
  entities: Schema.Record(EntityType, Schema.optionalKey(EntitySettings)),
  mapping: Schema.optionalKey(Schema.Record(EntityType, Schema.optionalKey(EntityMapping))),
  /** GL rules for this connection (default: the tenant's `glRules`). */
  glRules: Schema.optionalKey(Schema.Array(GlRule)),
  reconciliation: Schema.optionalKey(Reconciliation),
  polling: Schema.optionalKey(Polling),
  backfill: Schema.optionalKey(Backfill)
})
export type ConnectionConfig = typeof ConnectionConfig.Type

export const TenantConfig = Schema.Struct({
  version: Schema.Literal(1),
  tenant: Id,
  name: Schema.optionalKey(Schema.String),
  connections: Schema.Array(ConnectionConfig),
  glRules: Schema.optionalKey(Schema.Array(GlRule))
}).check(
  Schema.makeFilter((t: { readonly connections: ReadonlyArray<{ readonly id: string }>; readonly glRules?: ReadonlyArray<{ readonly name: string }> }) => {
    const issues: Array<Schema.FilterIssue> = []
    const seen = new Set<string>()
    t.connections.forEach((c, i) => {
      if (seen.has(c.id)) issues.push({ path: ["connections", i, "id"], issue: `duplicate connection id ${JSON.stringify(c.id)}` })
      seen.add(c.id)
    })
    const names = new Set<string>()
    ;(t.glRules ?? []).forEach((r, i) => {
      if (names.has(r.name)) issues.push({ path: ["glRules", i, "name"], issue: `duplicate rule name ${JSON.stringify(r.name)}` })
      names.add(r.name)
    })
    return issues
  })
).pipe(Schema.annotate({ title: "Concord tenant configuration", description: "Connections, sync directions, policies, mappings, GL rules and schedules of one tenant" }))
export type TenantConfig = typeof TenantConfig.Type

/** The GL rules that apply to a connection. */
export const rulesFor = (tenant: TenantConfig, connectionId: string): ReadonlyArray<typeof GlRule.Type> =>
  tenant.connections.find((c) => c.id === connectionId)?.glRules ?? tenant.glRules ?? []

// ---------------------------------------------------------------------------
// YAML with line numbers

/** A config problem with its YAML location (1-based line and column). */
export interface ConfigIssue extends FieldIssue {
  readonly line?: number
  readonly column?: number
}

const decodeTenant = decodeEither(TenantConfig)

const pathSegments = (path: string): Array<string | number> => {
  const out: Array<string | number> = []
  const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g
  for (const m of path.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1])
    else if (m[2] !== undefined) out.push(Number(m[2]))
    else if (m[3] !== undefined) out.push(JSON.parse(`"${m[3]}"`) as string)
  }
  return out
}

/** The deepest YAML node on the path (for an unknown or missing key: its parent, or the key itself). */
const locate = (doc: Document, segments: ReadonlyArray<string | number>): YamlNode | undefined => {
  let node: unknown = doc.contents
  let found: YamlNode | undefined = (doc.contents ?? undefined) as YamlNode | undefined
  for (const s of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(s))
      if (pair === undefined) return found
      node = pair.value
      found = ((pair.value ?? pair.key) as YamlNode | undefined) ?? found
      if (pair.value === null || pair.value === undefined) found = pair.key as YamlNode
    } else if (isSeq(node) && typeof s === "number") {
      node = node.items[s]
      if (node === undefined) return found
      found = node as YamlNode
    } else return found
  }
  return found
}

export type ParsedConfig =
  | { readonly ok: true; readonly config: TenantConfig }
  | { readonly ok: false; readonly issues: ReadonlyArray<ConfigIssue> }

/** Parses and validates a tenant's YAML, reporting every problem with its path and line. */
export const parseTenantYaml = (text: string): ParsedConfig => {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0])
        return { path: "", message: `YAML syntax: ${e.message.split("\n")[0]}`, line, column: col }
      })
    }
  }
  let js: unknown
  try {
    js = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    // The yaml library throws (rather than reporting) when aliases would expand past the limit: a billion-laughs document.
    return { ok: false, issues: [{ path: "", message: `YAML refused: ${e instanceof Error ? e.message : String(e)} (at most 100 alias expansions; write the values out)` }] }
  }
  const result = decodeTenant(js)
  if (result.ok) return { ok: true, config: result.value }
  return {
    ok: false,
    issues: result.issues.map((issue) => {
      const node = locate(doc, pathSegments(issue.path))
      const offset = node?.range?.[0]
      if (offset === undefined) return issue
      const { line, col } = lineCounter.linePos(offset)
      return { ...issue, line, column: col }
    })
  }
}

/** `config.yaml:12:5 connections[0].entities.invoice.policy: Expected …` */
export const formatIssues = (file: string, issues: ReadonlyArray<ConfigIssue>): string =>
  issues
    .map((i) => `${file}${i.line === undefined ? "" : `:${i.line}:${i.column ?? 1}`} ${i.path === "" ? "(document)" : i.path}: ${i.message}`)
    .join("\n")

/** The JSON Schema editors use to check tenant YAML (what `deploy/tenant-config.schema.json` holds). */
export const jsonSchema = (): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(TenantConfig)
  return {
    $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12,
    $id: "https://concord.dev/schemas/tenant-config.schema.json",
    ...doc.schema,
    ...(Object.keys(doc.definitions).length > 0 ? { $defs: doc.definitions } : {})
  }
}
