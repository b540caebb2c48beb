/**
 * API keys. A key is `ck_<key id>_<secret>`; only the SHA-256 of the secret
 * is stored. Tenant keys reach one tenant's data and nothing else; the admin
 * key (`CONCORD_ADMIN_KEY`, or generated into the data folder) is for
 * operators.
 */
import { Hash } from "@concord/core"
import { Signatures } from "@concord/providers"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import type { Caller } from "./api/Api.ts"
import { Settings } from "./Settings.ts"

const parse = (key: string): { id: string; secret: string } | undefined => {
  const m = /^ck_([A-Za-z0-9]{8,32})_([A-Za-z0-9_-]{16,128})$/.exec(key.trim())
  return m === null ? undefined : { id: m[1] as string, secret: m[2] as string }
}

export const generate = (): { id: string; secret: string; key: string } => {
  const id = randomBytes(9).toString("hex")
  const secret = randomBytes(24).toString("base64url")
  return { id, secret, key: `ck_${id}_${secret}` }
}

export interface ApiKeysShape {
  /** The caller a presented key stands for, or none when it is unknown or revoked. */
  readonly authenticate: (presented: Redacted.Redacted<string>) => Effect.Effect<Option.Option<Caller>>
  /** A new key for a tenant; the full key is returned once and never stored. */
  readonly create: (tenantId: string, label: string | undefined) => Effect.Effect<{ keyId: string; key: string }>
  /** The operators' key (for the demo and the CLI on the same machine). */
  readonly adminKey: Redacted.Redacted<string>
}

export class ApiKeys extends Context.Service<ApiKeys, ApiKeysShape>()("concord/server/ApiKeys") {}

const adminKeyOf = (settings: Settings["Service"]): Redacted.Redacted<string> => {
  if (Option.isSome(settings.adminKey)) return settings.adminKey.value
  const file = resolve(settings.dataDir, "admin.key")
  if (!existsSync(file)) {
    mkdirSync(resolve(settings.dataDir), { recursive: true })
    writeFileSync(file, `${generate().key}\n`, { mode: 0o600 })
  }
  return Redacted.make(readFileSync(file, "utf8").trim())
}

export const layer = Layer.effect(
  ApiKeys,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const settings = yield* Settings
    const adminKey = adminKeyOf(settings)
    const admin = parse(Redacted.value(adminKey))
    return ApiKeys.of({
      adminKey,
      authenticate: (presented) =>
        Effect.gen(function*() {
          const value = Redacted.value(presented)
          if (Signatures.constantTimeEqual(value, Redacted.value(adminKey))) {
            return Option.some<Caller>({ kind: "admin", keyId: admin?.id ?? "admin" })
          }
          const parsed = parse(value)
          if (parsed === undefined) return Option.none()
          const rows = yield* sql<{ tenant_id: string | null; role: string; secret_hash: string }>`
            SELECT tenant_id, role, secret_hash FROM api_keys WHERE id = ${parsed.id} AND revoked_at IS NULL`.pipe(Effect.orDie)
          const row = rows[0]
          if (row === undefined || !Signatures.constantTimeEqual(row.secret_hash, Hash.sha256(parsed.secret))) return Option.none()
          return Option.some<Caller>(row.role === "admin" || row.tenant_id === null
            ? { kind: "admin", keyId: parsed.id }
            : { kind: "tenant", tenantId: row.tenant_id, keyId: parsed.id })
        }),
      create: (tenantId, label) =>
        Effect.gen(function*() {
          const k = generate()
          yield* sql`INSERT INTO api_keys (id, tenant_id, role, secret_hash, label) VALUES (${k.id}, ${tenantId}, 'tenant', ${Hash.sha256(k.secret)}, ${label ?? null})`.pipe(Effect.orDie)
          return { keyId: k.id, key: k.key }
        })
    })
  })
)
