/**
 * The generated deployment files, by path relative to the repository root:
 *
 * - `deploy/tenant-config.schema.json`: tenant configuration, for editors;
 * - `deploy/schemas/*.schema.json`: the payload of every message Concord
 *   publishes (each identified schema of `@concord/reconciler/Events` on
 *   `CONCORD_EVENTS`, the dead letters on `CONCORD_DLQ`), of what it accepts
 *   on `CONCORD_IN`, and of the records and transactions the API takes;
 * - `deploy/nats/*.json`: the JetStream streams and the engine's durable
 *   consumer, exactly as the engine creates them (`nats stream add --config`).
 *
 * All come from the code (Effect Schemas, the stream configs), so they cannot
 * drift from it: `npm run schemas` rewrites them and test/deploy fails when a
 * committed file is stale.
 */
import { Canonical, Config, Ledger } from "@concord/core"
import * as Events from "@concord/reconciler/Events"
import { InboundMessage } from "@concord/reconciler/Inbound"
import { JsonSchema, Schema } from "effect"
import { consumerConfig } from "../packages/server/src/nats/Consumer.ts"
import { DeadLetter } from "../packages/server/src/nats/DeadLetters.ts"
import { streamConfigs, streamNames } from "../packages/server/src/nats/Nats.ts"

const pretty = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`

const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase()

const document = (file: string, schema: Schema.Top, meta: { readonly title: string; readonly description?: string }): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(schema)
  return {
    $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12,
    $id: `https://concord.dev/schemas/${file}`,
    title: meta.title,
    ...(meta.description === undefined ? {} : { description: meta.description }),
    ...doc.schema,
    ...(Object.keys(doc.definitions).length > 0 ? { $defs: doc.definitions } : {})
  }
}

const annotation = (schema: Schema.Top, key: "identifier" | "description"): string | undefined => {
  const value = (schema.ast.annotations as Record<string, unknown> | undefined)?.[key]
  return typeof value === "string" ? value : undefined
}

/** Every schema in Events.ts with an identifier is an event payload. */
export const eventSchemas = (): ReadonlyArray<{ readonly name: string; readonly schema: Schema.Top }> =>
  (Object.values(Events) as ReadonlyArray<unknown>)
    .filter((v): v is Schema.Top => Schema.isSchema(v) && annotation(v as Schema.Top, "identifier") !== undefined)
    .map((schema) => ({ name: annotation(schema, "identifier") as string, schema }))

/** The payload schemas written to deploy/schemas, by file name. */
export const payloadSchemas = (): Record<string, { readonly schema: Schema.Top; readonly title: string; readonly description?: string }> => {
  const out: Record<string, { schema: Schema.Top; title: string; description?: string }> = {}
  for (const e of eventSchemas()) {
    const description = annotation(e.schema, "description")
    out[`${kebab(e.name)}.schema.json`] = { schema: e.schema, title: e.name, ...(description === undefined ? {} : { description }) }
  }
  out["dead-letter.schema.json"] = {
    schema: DeadLetter,
    title: "DeadLetter",
    description: "On CONCORD_DLQ (concord.dlq.<tenant>.<provider>): an inbound message that exhausted its retries or could never succeed, with the last error"
  }
  out["inbound-message.schema.json"] = {
    schema: InboundMessage,
    title: "InboundMessage",
    description: "On CONCORD_IN (concord.in.<tenant>.<provider>.<source>): an app change, a provider change notice or a resync. The tenant must be the subject's; an app change's record must be a valid canonical record of its entity"
  }
  out["canonical-record.schema.json"] = {
    schema: Schema.Union(Object.values(Canonical.schemas) as ReadonlyArray<Schema.Top>),
    title: "CanonicalRecord",
    description: "A canonical record of any entity type, as PUT /v1/tenants/{tenant}/records/{entity}/{id} takes it (entity, id and schemaVersion default to the path's)"
  }
  out["transaction.schema.json"] = {
    schema: Ledger.Transaction,
    title: "Transaction",
    description: "A POS/payment transaction, as POST /v1/tenants/{tenant}/transactions takes it; the tenant's GL rules post it as a journal entry"
  }
  return out
}

export const generated = (): Record<string, string> => {
  const files: Record<string, string> = {
    "deploy/tenant-config.schema.json": pretty(Config.jsonSchema())
  }
  for (const [file, p] of Object.entries(payloadSchemas())) {
    files[`deploy/schemas/${file}`] = pretty(document(file, p.schema, p))
  }
  const names = streamNames("")
  for (const config of streamConfigs(names)) files[`deploy/nats/${config.name}.json`] = pretty(config)
  files[`deploy/nats/${names.consumer}.consumer.json`] = pretty({ stream_name: names.inbound, config: consumerConfig(names, 30_000) })
  return files
}
