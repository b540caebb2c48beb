/**
 * The token vault: provider credentials sealed with AES-256-GCM.
 *
 * Keys come from `CONCORD_ENCRYPTION_KEYS` (`id:base64-32-bytes,…`; the first
 * encrypts, every one decrypts, so keys rotate without downtime) or, when
 * unset, from a key generated once into the data folder. The connection id is
 * bound to each ciphertext as associated data, so a sealed row copied to
 * another connection does not open. No token is stored, logged or returned
 * in plaintext: token values only exist as `Redacted` in memory.
 *
 * The vault is also the providers' `TokenStore`: a refresh holds a Postgres
 * advisory lock per connection (single-flight across nodes) and the rotated
 * refresh token is committed before the new access token is handed out.
 */
import type { Provider, Tokens } from "@concord/providers"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { Settings } from "../Settings.ts"

export class VaultError extends Schema.TaggedError<VaultError>()("VaultError", {
  connectionId: Schema.optionalKey(Schema.String),
  reason: Schema.String
}) {
  override get message(): string {
    return `token vault${this.connectionId === undefined ? "" : ` (connection ${this.connectionId})`}: ${this.reason}`
  }
}

interface Key {
  readonly id: string
  readonly key: Buffer
}

/** Parses `id:base64[,id:base64…]`; every key must be 32 bytes. */
export const parseKeys = (text: string): ReadonlyArray<Key> | string => {
  const keys: Array<Key> = []
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p.length > 0)) {
    const i = part.indexOf(":")
    if (i <= 0) return `CONCORD_ENCRYPTION_KEYS entry ${keys.length + 1} is not id:base64key`
    const id = part.slice(0, i)
    const key = Buffer.from(part.slice(i + 1), "base64")
    if (key.length !== 32) return `CONCORD_ENCRYPTION_KEYS key '${id}' is ${key.length} bytes; AES-256 needs 32 (openssl rand -base64 32)`
    keys.push({ id, key })
  }
  return keys.length > 0 ? keys : "CONCORD_ENCRYPTION_KEYS is empty"
}

interface Sealed {
  readonly keyId: string
  readonly nonce: Buffer
  readonly ciphertext: Buffer
  readonly authTag: Buffer
}

const seal = (key: Key, plaintext: string, aad: string): Sealed => {
  const nonce = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", key.key, nonce)
  cipher.setAAD(Buffer.from(aad))
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return { keyId: key.id, nonce, ciphertext, authTag: cipher.getAuthTag() }
}

const open = (key: Key, sealed: Sealed, aad: string): string => {
  const decipher = createDecipheriv("aes-256-gcm", key.key, sealed.nonce)
  decipher.setAAD(Buffer.from(aad))
  decipher.setAuthTag(sealed.authTag)
  return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString("utf8")
}

const TokenJson = Schema.Struct({
  accessToken: Schema.String,
  refreshToken: Schema.String,
  accessTokenExpiresAt: Schema.Number,
  refreshTokenExpiresAt: Schema.optionalKey(Schema.Number),
  scope: Schema.optionalKey(Schema.String)
})
const decodeTokenJson = Schema.decodeUnknownSync(Schema.fromJsonString(TokenJson))

interface CredentialRow {
  readonly key_id: string
  readonly nonce: Uint8Array
  readonly ciphertext: Uint8Array
  readonly auth_tag: Uint8Array
}

export interface VaultShape {
  /** Seals and stores a connection's tokens (committed before returning). */
  readonly save: (connectionId: string, tokens: Provider.TokenSet) => Effect.Effect<void, VaultError | SqlError.SqlError>
  readonly load: (connectionId: string) => Effect.Effect<Option.Option<Provider.TokenSet>, VaultError | SqlError.SqlError>
  /** The tokens of several connections in one query (those without credentials, or that cannot be opened, are left out). */
  readonly loadMany: (connectionIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Provider.TokenSet>, SqlError.SqlError>
  /** Re-seals every credential under the current key; returns how many moved. */
  readonly rotate: Effect.Effect<number, VaultError | SqlError.SqlError>
  /** A `TokenStore` for the providers' token source. `onNeedsReauth` records the lost grant. */
  readonly tokenStore: (onNeedsReauth: (connectionId: string, reason: string) => Effect.Effect<void>) => Tokens.TokenStore
  /** The id of the key new credentials are sealed with. */
  readonly currentKeyId: string
}

export class Vault extends Context.Service<Vault, VaultShape>()("concord/server/Vault") {}

const loadKeys = Effect.gen(function*() {
  const settings = yield* Settings
  if (Option.isSome(settings.encryptionKeys)) {
    const parsed = parseKeys(Redacted.value(settings.encryptionKeys.value))
    if (typeof parsed === "string") return yield* new VaultError({ reason: parsed })
    return parsed
  }
  const file = resolve(settings.dataDir, "encryption.key")
  if (!existsSync(file)) {
    mkdirSync(resolve(settings.dataDir), { recursive: true })
    writeFileSync(file, `local:${randomBytes(32).toString("base64")}\n`, { mode: 0o600 })
    yield* Effect.logWarning(`generated an encryption key in ${file}; set CONCORD_ENCRYPTION_KEYS in production`)
  }
  const parsed = parseKeys(readFileSync(file, "utf8").trim())
  if (typeof parsed === "string") return yield* new VaultError({ reason: `${file}: ${parsed}` })
  return parsed
})

export const layer: Layer.Layer<Vault, VaultError, Settings | SqlClient.SqlClient> = Layer.effect(
  Vault,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const keys = yield* loadKeys
    const current = keys[0] as Key
    const byId = new Map(keys.map((k) => [k.id, k]))

    const toPlain = (tokens: Provider.TokenSet): string =>
      JSON.stringify({
        accessToken: Redacted.value(tokens.accessToken),
        refreshToken: Redacted.value(tokens.refreshToken),
        accessTokenExpiresAt: tokens.accessTokenExpiresAt,
        ...(tokens.refreshTokenExpiresAt === undefined ? {} : { refreshTokenExpiresAt: tokens.refreshTokenExpiresAt }),
        ...(tokens.scope === undefined ? {} : { scope: tokens.scope })
      })

    const save = (connectionId: string, tokens: Provider.TokenSet) =>
      Effect.gen(function*() {
        const s = seal(current, toPlain(tokens), connectionId)
        const refreshExpires = tokens.refreshTokenExpiresAt === undefined ? null : new Date(tokens.refreshTokenExpiresAt)
        yield* sql`
          INSERT INTO credentials (connection_id, key_id, nonce, ciphertext, auth_tag, access_expires_at, refresh_expires_at, updated_at)
          VALUES (${connectionId}, ${s.keyId}, ${s.nonce}, ${s.ciphertext}, ${s.authTag}, ${new Date(tokens.accessTokenExpiresAt)}, ${refreshExpires}, now())
          ON CONFLICT (connection_id) DO UPDATE SET key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce,
            ciphertext = EXCLUDED.ciphertext, auth_tag = EXCLUDED.auth_tag, access_expires_at = EXCLUDED.access_expires_at,
            refresh_expires_at = EXCLUDED.refresh_expires_at, updated_at = now()`
      })

    const decrypt = (connectionId: string, row: CredentialRow): Effect.Effect<Provider.TokenSet, VaultError> =>
      Effect.try({
        try: () => {
          const key = byId.get(row.key_id)
          if (key === undefined) throw new Error(`sealed with key '${row.key_id}', which is not in CONCORD_ENCRYPTION_KEYS`)
          const plain = decodeTokenJson(open(key, {
            keyId: row.key_id,
            nonce: Buffer.from(row.nonce),
            ciphertext: Buffer.from(row.ciphertext),
            authTag: Buffer.from(row.auth_tag)
          }, connectionId))
          return {
            accessToken: Redacted.make(plain.accessToken),
            refreshToken: Redacted.make(plain.refreshToken),
            accessTokenExpiresAt: plain.accessTokenExpiresAt,
            ...(plain.refreshTokenExpiresAt === undefined ? {} : { refreshTokenExpiresAt: plain.refreshTokenExpiresAt }),
            ...(plain.scope === undefined ? {} : { scope: plain.scope })
          } satisfies Provider.TokenSet
        },
        catch: (e) => new VaultError({ connectionId, reason: `cannot open credentials: ${e instanceof Error ? e.message : String(e)}` })
      })

    const load = (connectionId: string) =>
      Effect.gen(function*() {
        const rows = yield* sql<CredentialRow>`SELECT key_id, nonce, ciphertext, auth_tag FROM credentials WHERE connection_id = ${connectionId}`
        const row = rows[0]
        if (row === undefined) return Option.none()
        return Option.some(yield* decrypt(connectionId, row))
      })

    const loadMany = (connectionIds: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const out = new Map<string, Provider.TokenSet>()
        if (connectionIds.length === 0) return out
        const rows = yield* sql<CredentialRow & { connection_id: string }>`
          SELECT connection_id, key_id, nonce, ciphertext, auth_tag FROM credentials WHERE connection_id IN ${sql.in(connectionIds)}`
        for (const row of rows) {
          // One that cannot be opened is read (and its error reported) by the session itself.
          const opened = yield* Effect.option(decrypt(row.connection_id, row))
          if (opened._tag === "Some") out.set(row.connection_id, opened.value)
        }
        return out
      })

    const rotate = Effect.gen(function*() {
      const rows = yield* sql<CredentialRow & { connection_id: string }>`
        SELECT connection_id, key_id, nonce, ciphertext, auth_tag FROM credentials WHERE key_id <> ${current.id}`
      for (const row of rows) yield* save(row.connection_id, yield* decrypt(row.connection_id, row))
      return rows.length
    })

    const tokenStore = (onNeedsReauth: (connectionId: string, reason: string) => Effect.Effect<void>): Tokens.TokenStore => ({
      load: (id) => load(id).pipe(Effect.map(Option.getOrUndefined), Effect.orDie),
      save: (id, tokens) => save(id, tokens).pipe(Effect.orDie),
      markNeedsReauth: onNeedsReauth,
      withRefreshLock: (id, effect) =>
        sql.withTransaction(
          sql`SELECT pg_advisory_xact_lock(hashtext(${`concord-refresh:${id}`}))`.pipe(Effect.orDie, Effect.andThen(effect))
        ).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e)))
    })

    return Vault.of({ save, load, loadMany, rotate, tokenStore, currentKeyId: current.id })
  })
)
