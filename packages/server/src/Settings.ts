/**
 * Process settings, read once from the environment.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `PORT` | 8080 | HTTP port |
 * | `HOST` | 127.0.0.1 | HTTP bind address (0.0.0.0 in containers) |
 * | `DATABASE_URL` | — | Postgres; without it an embedded Postgres runs in the data dir |
 * | `NATS_URL` | — | NATS with JetStream; without it a local `nats-server -js` child runs |
 * | `CONCORD_DATA_DIR` | `./.concord` | embedded Postgres and NATS data, generated keys |
 * | `CONCORD_PUBLIC_URL` | `http://HOST:PORT` | base of OAuth callbacks and links in events |
 * | `CONCORD_ENCRYPTION_KEYS` | generated into the data dir | `id:base64key[,id:base64key…]`, first encrypts, all decrypt |
 * | `CONCORD_ADMIN_KEY` | generated into the data dir | the operators' API key |
 * | `CONCORD_NATS_PREFIX` | — | prefix for stream names and subjects (tests, shared servers) |
 * | `CONCORD_MAX_DELIVER` | 5 | attempts before an inbound message goes to the DLQ |
 * | `CONCORD_ACK_WAIT_MS` | 30000 | how long an unacknowledged inbound message waits before redelivery (a crashed node's work) |
 * | `CONCORD_DEMO` | — | `1` starts the sandboxes and a demo tenant |
 * | `CONCORD_LOG_LEVEL` | info | trace, debug, info, warn, error |
 */
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"

export interface SettingsShape {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly natsUrl: Option.Option<string>
  readonly dataDir: string
  readonly publicUrl: string
  readonly encryptionKeys: Option.Option<Redacted.Redacted<string>>
  readonly adminKey: Option.Option<Redacted.Redacted<string>>
  readonly natsPrefix: string
  readonly maxDeliver: number
  readonly ackWaitMs: number
  readonly demo: boolean
  readonly logLevel: string
  /** Names this process in the cluster and in logs. */
  readonly nodeName: string
}

export class Settings extends Context.Service<Settings, SettingsShape>()("concord/server/Settings") {
  static readonly fromEnv = Effect.gen(function*() {
    const port = yield* Config.Port("PORT").pipe(Config.withDefault(8080))
    const host = yield* Config.String("HOST").pipe(Config.withDefault("127.0.0.1"))
    const settings: SettingsShape = {
      port,
      host,
      databaseUrl: yield* Config.option(Config.Redacted("DATABASE_URL")),
      natsUrl: yield* Config.option(Config.String("NATS_URL")),
      dataDir: yield* Config.String("CONCORD_DATA_DIR").pipe(Config.withDefault(".concord")),
      publicUrl: yield* Config.String("CONCORD_PUBLIC_URL").pipe(Config.withDefault(`http://${host === "0.0.0.0" ? "localhost" : host}:${port}`)),
      encryptionKeys: yield* Config.option(Config.Redacted("CONCORD_ENCRYPTION_KEYS")),
      adminKey: yield* Config.option(Config.Redacted("CONCORD_ADMIN_KEY")),
      natsPrefix: yield* Config.String("CONCORD_NATS_PREFIX").pipe(Config.withDefault("")),
      maxDeliver: yield* Config.Int("CONCORD_MAX_DELIVER").pipe(Config.withDefault(5)),
      ackWaitMs: yield* Config.Int("CONCORD_ACK_WAIT_MS").pipe(Config.withDefault(30_000)),
      demo: yield* Config.Boolean("CONCORD_DEMO").pipe(Config.withDefault(false)),
      logLevel: yield* Config.String("CONCORD_LOG_LEVEL").pipe(Config.withDefault("info")),
      nodeName: yield* Config.String("CONCORD_NODE_NAME").pipe(Config.withDefault(`node-${process.pid}`))
    }
    return settings
  })

  static readonly layer = Layer.effect(Settings, Settings.fromEnv)

  /** Settings for tests and embedding, with everything not given at its default. */
  static readonly make = (overrides: Partial<SettingsShape>): SettingsShape => ({
    port: 0,
    host: "127.0.0.1",
    databaseUrl: Option.none(),
    natsUrl: Option.none(),
    dataDir: ".concord",
    publicUrl: "http://127.0.0.1:8080",
    encryptionKeys: Option.none(),
    adminKey: Option.none(),
    natsPrefix: "",
    maxDeliver: 5,
    ackWaitMs: 30_000,
    demo: false,
    logLevel: "info",
    nodeName: `node-${process.pid}`,
    ...overrides
  })
}

export const redactedValue = Redacted.value
