/**
 * Helpers for the security tests: raw HTTP requests (paths and bodies exactly
 * as given, no URL normalisation), the API's routes enumerated from its
 * definition, hostile values for fast-check, and views of the test database
 * and streams (row counts, a full dump, stream message counts).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { HttpApi } from "effect/http-api"
import { SqlClient } from "effect/sql"
import fc from "fast-check"
import { readdirSync, readFileSync } from "node:fs"
import { request } from "node:http"
import { join } from "node:path"
import { connect, type NatsConnection } from "nats"
import { Api } from "../../packages/server/src/api/Api.ts"
import { natsUrl } from "../support/services.ts"

const root = join(import.meta.dirname, "../..")

export interface RawResponse {
  readonly status: number
  readonly text: string
}

/** One HTTP request with the path sent byte for byte (fetch would resolve `..` and re-encode). */
export const rawRequest = (
  baseUrl: string,
  method: string,
  path: string,
  options: { readonly headers?: Record<string, string>; readonly body?: string | Uint8Array } = {}
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const u = new URL(baseUrl)
    const body = options.body === undefined ? undefined : typeof options.body === "string" ? Buffer.from(options.body) : Buffer.from(options.body)
    const req = request({
      host: u.hostname,
      port: Number(u.port),
      method,
      path,
      headers: { ...(body === undefined ? {} : { "content-length": String(body.length) }), ...options.headers }
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("error", reject)
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)))
    if (body !== undefined) req.write(body)
    req.end()
  })

export interface Route {
  readonly group: string
  readonly name: string
  readonly method: string
  /** With `:param` placeholders, as declared. */
  readonly path: string
  readonly params: ReadonlyArray<string>
  /** The group requires an API key. */
  readonly authenticated: boolean
}

/** Every endpoint of the API, read from its definition (so a new route is covered without editing the tests). */
export const routes = (): ReadonlyArray<Route> => {
  const out: Array<Route> = []
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, group, middleware }) => {
      out.push({
        group: group.identifier,
        name: endpoint.identifier,
        method: endpoint.method,
        path: endpoint.path,
        params: [...endpoint.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1] as string),
        authenticated: [...middleware].some((m) => (m as { key?: string }).key === "concord/server/Authentication")
      })
    }
  })
  return out
}

/** How many endpoints the API's source files declare (`HttpApiEndpoint.get(` …), to check the reflection saw them all. */
export const declaredEndpointCount = (): number => {
  const dir = join(root, "packages/server/src/api")
  let n = 0
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    n += [...readFileSync(join(dir, file), "utf8").matchAll(/HttpApiEndpoint\.(get|post|put|patch|delete|head|options)\(/g)].length
  }
  return n
}

/** Fills a route's `:params`. */
export const fill = (path: string, values: Readonly<Record<string, string>>): string =>
  path.replace(/:([A-Za-z_]+)/g, (_, name: string) => values[name] ?? "x")

// ---------------------------------------------------------------------------
// Hostile values

export const hostileStrings: ReadonlyArray<string> = [
  "",
  " ",
  "../../../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "%2e%2e%2f%2e%2e%2f",
  "\u0000",
  "a\u0000b",
  "'; DROP TABLE records; --",
  "\" OR 1=1 --",
  "<script>alert(1)</script>",
  "${7*7}{{7*7}}#{7*7}",
  "__proto__",
  "constructor",
  "prototype",
  "hasOwnProperty",
  "toString",
  "\uFEFFbom",
  "\u202Eevil\u202C",
  "𝕮𝖔𝖓𝖈𝖔𝖗𝖉 ☃ 💥 שלום مرحبا",
  "\uD800",
  "\uDFFF\uD800",
  "NaN",
  "Infinity",
  "-1",
  "1e309",
  "null",
  "undefined",
  "true",
  "concord.in.>",
  "*",
  ">",
  "a.b.c",
  "\r\nX-Injected: 1",
  "x".repeat(65),
  "x".repeat(129),
  "y".repeat(5000)
]

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) }
)

/** Raw path segments, sent as they are: traversal, bad escapes, encoded nulls. */
export const rawSegments: ReadonlyArray<string> = [
  "..",
  "../..",
  "..%2f..%2f",
  "%2e%2e",
  "%2e%2e%2f%2e%2e",
  "%252e%252e%252f",
  "%00",
  "%ff%fe",
  "%",
  "%zz",
  "%c0%ae%c0%ae",
  ".",
  "~",
  ";",
  "a;b=c",
  "%0d%0aSet-Cookie:%20x=1"
]

/** A path parameter: a valid value, a hostile string (URI-encoded) or a raw segment. */
export const pathParam = (valid: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant(encodeURIComponent(valid)) },
    { weight: 3, arbitrary: hostileString.map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, "\uFFFD"))) },
    { weight: 2, arbitrary: fc.constantFrom(...rawSegments) }
  )

const protoKeys = ["__proto__", "constructor", "prototype"]

/** JSON text that pollutes prototypes when merged carelessly. */
export const pollutionBodies: ReadonlyArray<string> = [
  `{"__proto__":{"polluted":"yes","isAdmin":true}}`,
  `{"constructor":{"prototype":{"polluted":"yes"}}}`,
  `{"name":"x","__proto__":{"polluted":"yes"},"roles":["customer"],"status":"active"}`,
  `{"resolution":"merged","value":{"__proto__":{"polluted":"yes"}}}`,
  `{"label":{"__proto__":{"polluted":"yes"}}}`,
  `[{"__proto__":{"polluted":"yes"}}]`
]

/** Text that is not JSON, or JSON that parsers disagree on. */
export const malformedJson: ReadonlyArray<string> = [
  "{",
  "}",
  "{\"a\":",
  "{\"a\":1,}",
  "{'a':1}",
  "{a:1}",
  "[1,2",
  "NaN",
  "Infinity",
  "undefined",
  "{\"a\":1e999999}",
  "{\"a\":-0}",
  "\u0000{}",
  "\uFEFF{}",
  "{\"a\":\"\\ud800\"}",
  "{\"a\":\"\\u0000\"}",
  "[".repeat(5000) + "]".repeat(5000),
  "{\"a\":".repeat(3000) + "1" + "}".repeat(3000),
  "{\"a\":1}{\"b\":2}",
  "\"just a string\"",
  "0",
  "true",
  "null",
  "[]"
]

/** A JSON object with keys and values chosen to break things. */
const hostileObject: fc.Arbitrary<Record<string, unknown>> = fc.dictionary(
  fc.oneof(fc.constantFrom(...protoKeys, "id", "entity", "tenant", "name", "amount", "lines", "resolution", "value", "accessToken", "entities", "since", "years", "pageSize"), hostileString),
  fc.oneof(hostileString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 })),
  { maxKeys: 8 }
)

/** A request body: malformed JSON, prototype pollution, wrong shapes, hostile strings, or random bytes. */
export const hostileBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...malformedJson) },
  { weight: 2, arbitrary: fc.constantFrom(...pollutionBodies) },
  { weight: 3, arbitrary: hostileObject.map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 300 }) }
)

export const contentTypes: ReadonlyArray<string | undefined> = [
  "application/json",
  "application/json; charset=utf-8",
  "application/yaml",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "application/cloudevents-batch+json",
  "application/json; charset=utf-16",
  "*/*",
  "garbage",
  undefined
]

// ---------------------------------------------------------------------------
// The test database

export interface Db {
  readonly query: <A = Record<string, unknown>>(text: string) => Promise<ReadonlyArray<A>>
  readonly close: () => Promise<void>
}

export const openDb = (url: string): Db => {
  const runtime = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }) as Layer.Layer<SqlClient.SqlClient | PgClient.PgClient>)
  return {
    query: <A>(text: string) =>
      runtime.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return (yield* sql.unsafe(text)) as unknown as ReadonlyArray<A>
      })),
    close: () => runtime.dispose()
  }
}

/** Every ordinary table of the database, schema-qualified. */
export const tables = async (db: Db): Promise<ReadonlyArray<string>> =>
  (await db.query<{ name: string }>(`
    SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1`)).map((r) => r.name)

/** Row counts of every table. */
export const rowCounts = async (db: Db, only?: ReadonlyArray<string>): Promise<Record<string, number>> => {
  const out: Record<string, number> = {}
  for (const t of await tables(db)) {
    if (only !== undefined && !only.some((o) => t === o || t.endsWith(`.${o}`))) continue
    const [row] = await db.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${t}`)
    out[t] = Number(row?.n ?? 0)
  }
  return out
}

/** Every row of every table as JSON text, one line a row: what a stolen backup would show. */
export const dumpDatabase = async (db: Db): Promise<string> => {
  const lines: Array<string> = []
  for (const t of await tables(db)) {
    const rows = await db.query<{ row: string }>(`SELECT row_to_json(x)::text AS row FROM ${t} x`)
    for (const r of rows) lines.push(`${t} ${r.row}`)
  }
  return lines.join("\n")
}

// ---------------------------------------------------------------------------
// Streams

export const withNats = async <A>(f: (nc: NatsConnection) => Promise<A>): Promise<A> => {
  const nc = await connect({ servers: natsUrl })
  try {
    return await f(nc)
  } finally {
    await nc.close()
  }
}

/** Messages a stream holds, optionally only those on subjects matching `filter`. */
export const streamMessages = (nc: NatsConnection, stream: string, filter?: string): Promise<number> =>
  nc.jetstreamManager().then(async (jsm) => {
    const info = await jsm.streams.info(stream, filter === undefined ? undefined : { subjects_filter: filter })
    if (filter === undefined) return info.state.messages
    return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0)
  })

/** Waits until the engine's inbound consumer has nothing pending or unacknowledged. */
export const consumerIdle = async (nc: NatsConnection, prefix: string): Promise<{ pending: number; ackPending: number }> => {
  const jsm = await nc.jetstreamManager()
  const info = await jsm.consumers.info(`${prefix.toUpperCase()}_CONCORD_IN`, `${prefix.toUpperCase()}_concord-engine`)
  return { pending: info.num_pending, ackPending: info.num_ack_pending }
}
