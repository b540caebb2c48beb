/**
 * Real PostgreSQL and NATS for integration tests.
 *
 * Tests read DATABASE_URL / NATS_URL (defaults: the local servers that
 * `scripts/services.sh` starts). When a server is unreachable the suite is
 * skipped, unless CONCORD_REQUIRE_SERVICES=1 (CI), where it fails instead.
 */
import * as Net from "node:net"
import { randomBytes } from "node:crypto"
import { connect } from "nats"

export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres:postgres@127.0.0.1:5432/postgres"
export const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222"
export const requireServices = process.env.CONCORD_REQUIRE_SERVICES === "1"

const hostPort = (url: string, defaultPort: number): { host: string; port: number } => {
  const u = new URL(url)
  return { host: u.hostname || "127.0.0.1", port: u.port ? Number(u.port) : defaultPort }
}

const reachable = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

const pg = hostPort(databaseUrl, 5432)
const nats = hostPort(natsUrl, 4222)

/** True when both servers answer; throws (failing the file) when required and missing. */
export const servicesAvailable: boolean = await (async () => {
  const [pgOk, natsOk] = await Promise.all([reachable(pg.host, pg.port), reachable(nats.host, nats.port)])
  if (pgOk && natsOk) return true
  const missing = [pgOk ? undefined : `PostgreSQL at ${pg.host}:${pg.port}`, natsOk ? undefined : `NATS at ${nats.host}:${nats.port}`]
    .filter((x) => x !== undefined)
    .join(" and ")
  if (requireServices) {
    throw new Error(`${missing} unreachable and CONCORD_REQUIRE_SERVICES=1; run 'bash scripts/services.sh'`)
  }
  console.warn(`[concord tests] skipping integration tests: ${missing} unreachable`)
  return false
})()

/** A name unique to this test run, safe for databases, schemas and stream names. */
export const uniqueName = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const adminQuery = async (query: string): Promise<void> => {
  const { PgClient } = await import("@effect/sql-pg")
  const { Effect, Redacted } = await import("effect")
  const { SqlClient } = await import("effect/sql")
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(query)
    }).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl), maxConnections: 1 })),
      Effect.scoped
    )
  )
}

/** Creates a fresh database for one test file; returns its URL and a drop function. */
export const freshDatabase = async (prefix = "concord_t"): Promise<{ url: string; name: string; drop: () => Promise<void> }> => {
  const name = uniqueName(prefix).toLowerCase()
  await adminQuery(`CREATE DATABASE ${name}`)
  return {
    url: withDatabase(databaseUrl, name),
    name,
    drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

/** Deletes JetStream streams whose names start with prefix (test cleanup). */
export const deleteStreams = async (prefix: string): Promise<void> => {
  const nc = await connect({ servers: natsUrl })
  try {
    const jsm = await nc.jetstreamManager()
    for await (const info of jsm.streams.list()) {
      if (info.config.name.startsWith(prefix)) await jsm.streams.delete(info.config.name)
    }
  } finally {
    await nc.close()
  }
}
