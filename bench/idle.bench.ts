/**
 * An idle deployment: 10,000 connected tenants and no traffic. The engine runs
 * as its own process (as in production) on real Postgres and NATS; the
 * QuickBooks and Xero sandboxes (limits off) run in this process.
 *
 *   npm run bench -- idle                          # 10,000 connections, 60 s sample
 *   npm run bench -- idle --connections 2000 --seconds 30 --warmup 20
 *   npm run bench -- idle --baseline               # the same, every poll a day away (the engine's standing cost)
 *
 * The connections are written straight into the database (tenants,
 * connections, credentials sealed by the engine's own vault code), half on
 * each sandbox, with the default polling settings (floor 30 s, ceiling 15 min,
 * safety 1 h) and, as after a quiet week, each one's schedule at its ceiling
 * (`poll_state`, due times spread over one ceiling / one safety interval).
 * Each connection has an entity without webhooks (QuickBooks currency, Xero
 * account), so the poller really polls every one of them at its ceiling, and
 * entities with webhooks that get the safety poll.
 *
 * After a warm-up the engine's RSS and CPU (its whole process tree, from
 * /proc/<pid>/stat and /proc/<pid>/status) are sampled every second for a
 * minute. Targets (issue 6): under 1 GB RSS and under 5% CPU.
 */
import { Config } from "@concord/core"
import * as QuickBooksSandbox from "../packages/providers/src/quickbooks/Sandbox.ts"
import * as XeroSandbox from "../packages/providers/src/xero/Sandbox.ts"
import { Effect, Exit, Layer, ManagedRuntime, Option, Redacted, Schema, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { readdirSync, readFileSync } from "node:fs"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Settings } from "../packages/server/src/Settings.ts"
import * as Database from "../packages/server/src/storage/Database.ts"
import { chunks, nonEmpty } from "../packages/server/src/storage/Rows.ts"
import * as VaultModule from "../packages/server/src/storage/Vault.ts"
import { callApi, sandboxEnv, startChild } from "../test/support/child-engine.ts"
import { deleteStreams, freshDatabase, uniqueName } from "../test/support/services.ts"

const args = process.argv.slice(2)
const arg = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : fallback
  return Number.isFinite(v) && v > 0 ? v : fallback
}
const CONNECTIONS = arg("connections", 10_000)
const SECONDS = arg("seconds", 60)
const WARMUP = arg("warmup", 30)
const ACCOUNTS = 50
/** `--baseline`: every poll is pushed a day out, to tell the polls' cost from the engine's standing cost. */
const BASELINE = args.includes("--baseline")
const OFFSET_MS = BASELINE ? 86_400_000 : 0
/** Same key as test/support/child-engine.ts gives the engine. */
const KEYS = "test:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
const CEILING_MS = 15 * 60_000
const SAFETY_MS = 60 * 60_000

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const CLK_TCK = 100

/** The process and its descendants (the `concord` wrapper re-executes under Node 22). */
const tree = (pid: number): Array<number> => {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number
    for (const task of readdirSync(`/proc/${p}/task`, { withFileTypes: false }) as Array<string>) {
      const children = readFileSync(`/proc/${p}/task/${task}/children`, "utf8").trim()
      if (children !== "") out.push(...children.split(/\s+/).map(Number))
    }
  }
  return out
}
const cpuTicks = (pid: number, path = `/proc/${pid}/stat`, which: "both" | "user" | "system" = "both"): number => {
  const stat = readFileSync(path, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const user = Number(fields[11])
  const system = Number(fields[12])
  return which === "user" ? user : which === "system" ? system : user + system
}
const rssBytes = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return m === null ? 0 : Number(m[1]) * 1024
}
/** CPU ticks per thread name (main JS thread, libuv pool, V8 GC helpers …) of a process. */
const threads = (pid: number): Map<string, number> => {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim()
      out.set(name, (out.get(name) ?? 0) + cpuTicks(Number(tid), `/proc/${pid}/task/${tid}/stat`))
    } catch {
      // the thread ended
    }
  }
  return out
}
const sample = (pid: number) => {
  const pids = tree(pid)
  return {
    ticks: pids.reduce((s, p) => s + cpuTicks(p), 0),
    system: pids.reduce((s, p) => s + cpuTicks(p, `/proc/${p}/stat`, "system"), 0),
    rss: pids.reduce((s, p) => s + rssBytes(p), 0),
    pids
  }
}

const encodeTenant = Schema.encodeSync(Config.TenantConfig)
const tenantJson = (tenant: string, connection: string, provider: "quickbooks" | "xero", account: string): string => {
  const entities = provider === "quickbooks"
    ? "account: { direction: pull }\n      currency: { direction: pull }\n      contact: { direction: both }\n      invoice: { direction: both }"
    : "account: { direction: pull }\n      contact: { direction: both }\n      invoice: { direction: both }"
  const parsed = Config.parseTenantYaml(`version: 1\ntenant: ${tenant}\nconnections:\n  - id: ${connection}\n    provider: ${provider}\n    account: "${account}"\n    entities:\n      ${entities}\n`)
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues))
  return JSON.stringify(encodeTenant(parsed.config))
}

const main = async () => {
  const scope = Effect.runSync(Scope.make())
  const qbo = await Effect.runPromise(QuickBooksSandbox.start({ limits: false, accounts: ACCOUNTS }).pipe(Scope.provide(scope)))
  const xero = await Effect.runPromise(XeroSandbox.start({ limits: false, accounts: ACCOUNTS }).pipe(Scope.provide(scope)))
  const db = await freshDatabase("concord_bench")
  const prefix = uniqueName("bench").toLowerCase()

  // 1. The connections, straight into the (migrated) database.
  const settings = Settings.make({
    port: 0,
    databaseUrl: Option.some(Redacted.make(db.url)),
    natsUrl: Option.none(),
    natsPrefix: prefix,
    dataDir: mkdtempSync(join(tmpdir(), "concord-bench-")),
    publicUrl: "http://127.0.0.1:0",
    encryptionKeys: Option.some(Redacted.make(KEYS))
  })
  const runtime = ManagedRuntime.make(VaultModule.layer.pipe(Layer.provideMerge(Database.layer), Layer.provide(Layer.succeed(Settings, settings))))
  const registered = Date.now()
  await runtime.runPromise(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const vault = yield* VaultModule.Vault
    const now = Date.now()
    /** Where in the interval connection i is due (spread evenly, not in id order). */
    const due = (i: number, prime: number) => ((i * prime) % CONNECTIONS) / CONNECTIONS
    const rows = Array.from({ length: CONNECTIONS }, (_, i) => {
      const provider = i % 2 === 0 ? "quickbooks" as const : "xero" as const
      const sandbox = provider === "quickbooks" ? qbo : xero
      const account = sandbox.accounts[Math.floor(i / 2) % ACCOUNTS] as string
      return { i, provider, sandbox, account, tenant: `idle-${i}`, connection: `idle-${i}-${provider === "quickbooks" ? "qbo" : "xero"}` }
    })
    for (const part of chunks(rows, 8)) {
      yield* sql`INSERT INTO tenants ${sql.insert(nonEmpty(part.map((r): Record<string, unknown> => ({ id: r.tenant, name: null, config: tenantJson(r.tenant, r.connection, r.provider, r.account) }))))}`
      yield* sql`INSERT INTO connections ${sql.insert(nonEmpty(part.map((r): Record<string, unknown> => ({ id: r.connection, tenant_id: r.tenant, provider: r.provider, account_id: r.account, base_url: r.sandbox.baseUrl, status: "active" }))))}`
      yield* sql`INSERT INTO poll_state ${sql.insert(nonEmpty(part.map((r): Record<string, unknown> => ({
        connection_id: r.connection,
        interval_ms: CEILING_MS,
        next_poll_at: new Date(now + OFFSET_MS + due(r.i, 7919) * CEILING_MS),
        // The poller lets a safety poll ride along with the adaptive poll before it, so after an hour
        // each connection's safety poll falls on every fourth of its adaptive polls.
        next_safety_at: new Date(now + OFFSET_MS + due(r.i, 7919) * CEILING_MS + (r.i % 4) * CEILING_MS),
        // Each was polled one ceiling before it is due again.
        last_poll_at: new Date(now + OFFSET_MS + due(r.i, 7919) * CEILING_MS - CEILING_MS),
        last_changes: 0,
        started_at: new Date(now)
      }))))}`
    }
    yield* Effect.forEach(rows, (r) => {
      const t = r.sandbox.issueTokens([r.account])
      return vault.save(r.connection, {
        accessToken: Redacted.make(t.access_token),
        refreshToken: Redacted.make(t.refresh_token),
        accessTokenExpiresAt: now + t.expires_in * 1000
      })
    }, { concurrency: 10, discard: true })
  }) as Effect.Effect<void, unknown, never>)
  await runtime.dispose()
  console.log(`registered ${fmt(CONNECTIONS)} connections (${fmt(CONNECTIONS / 2)} QuickBooks, ${fmt(CONNECTIONS / 2)} Xero) in ${fmt((Date.now() - registered) / 1000, 1)} s`)

  // 2. The engine, as its own process.
  const engine = await startChild({
    databaseUrl: db.url,
    natsPrefix: prefix,
    env: {
      ...sandboxEnv(qbo),
      ...sandboxEnv(xero),
      CONCORD_LOG_LEVEL: "warn",
      ...(process.env.CONCORD_POLL_TICK_MS === undefined ? {} : { CONCORD_POLL_TICK_MS: process.env.CONCORD_POLL_TICK_MS }),
      ...(process.env.BENCH_PROFILE === undefined ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` })
    }
  })
  const pid = engine.process.pid as number
  const requests = { quickbooks: 0, xero: 0 }
  qbo.onRequest(() => requests.quickbooks++)
  try {
    const pollState = async () => {
      const r = await callApi(engine.url, "GET", `/v1/tenants/idle-0/connections/idle-0-qbo`)
      return r.body?.polling
    }
    console.log(`engine ready (pid ${pid}); warming up ${WARMUP} s…`)
    await sleep(WARMUP * 1000)

    // 3. Sample for a minute.
    const metricsBefore = await fetch(`${engine.url}/metrics`).then((r) => r.text())
    const requestsBefore = { quickbooks: requests.quickbooks, xero: xero.stats.requests }
    const first = sample(pid)
    const threadsBefore = threads(pid)
    const started = Date.now()
    let peakRss = first.rss
    const rssSeries: Array<number> = []
    let last = first
    while (Date.now() - started < SECONDS * 1000) {
      await sleep(1000)
      last = sample(pid)
      rssSeries.push(last.rss)
      peakRss = Math.max(peakRss, last.rss)
    }
    const elapsed = (Date.now() - started) / 1000
    const threadsAfter = threads(pid)
    const sampled = { quickbooks: requests.quickbooks - requestsBefore.quickbooks, xero: xero.stats.requests - requestsBefore.xero }
    const metricsAfter = await fetch(`${engine.url}/metrics`).then((r) => r.text())
    const cpuSeconds = (last.ticks - first.ticks) / CLK_TCK
    const cpuPct = (cpuSeconds / elapsed) * 100
    const avgRss = rssSeries.reduce((s, x) => s + x, 0) / Math.max(1, rssSeries.length)

    const counter = (text: string, name: string, match = "") =>
      text.split("\n").filter((l) => l.startsWith(name) && l.includes(match)).reduce((s, l) => s + Number(l.split(" ").at(-1)), 0)
    const polls = counter(metricsAfter, "concord_polls_total") - counter(metricsBefore, "concord_polls_total")
    const pollErrors = counter(metricsAfter, "concord_polls_total", 'outcome="error"') - counter(metricsBefore, "concord_polls_total", 'outcome="error"')
    const adaptive = counter(metricsAfter, "concord_polls_total", 'kind="adaptive"') - counter(metricsBefore, "concord_polls_total", 'kind="adaptive"')
    const lag = counter(metricsAfter, "concord_poll_lag_seconds")
    const scheduled = counter(metricsAfter, "concord_polled_connections")
    const expected = CONNECTIONS * elapsed * (1 / (CEILING_MS / 1000) + 1 / (SAFETY_MS / 1000))
    const expectedAdaptive = CONNECTIONS * elapsed / (CEILING_MS / 1000)

    const MB = 1024 * 1024
    console.log("")
    console.log(`idle engine, ${fmt(CONNECTIONS)} connections, no traffic, ${fmt(elapsed, 0)} s sample (process tree: ${last.pids.join(", ")})`)
    console.log(`  RSS             ${fmt(avgRss / MB)} MB average, ${fmt(peakRss / MB)} MB peak    target < 1,024 MB   ${peakRss < 1024 * MB ? "OK" : "MISSED"}`)
    const systemPct = ((last.system - first.system) / CLK_TCK / elapsed) * 100
    console.log(`  CPU             ${fmt(cpuPct, 2)}% of one core (${fmt(cpuSeconds, 2)} s in ${fmt(elapsed, 0)} s; ${fmt(systemPct, 2)}% of it in the kernel)    target < 5%   ${cpuPct < 5 ? "OK" : "MISSED"}`)
    console.log(`  polls           ${fmt(adaptive)} adaptive polls at the ceiling (~${fmt(expectedAdaptive)} expected), ${fmt(polls - adaptive)} safety polls riding along (~${fmt(expected - expectedAdaptive)} expected), ${fmt(pollErrors)} failed`)
    console.log(`  schedule        ${fmt(scheduled)} connections scheduled, most overdue poll ${fmt(lag, 1)} s late`)
    console.log(`  provider calls  ${fmt(sampled.quickbooks)} QuickBooks and ${fmt(sampled.xero)} Xero requests in the sample (${fmt((sampled.quickbooks + sampled.xero) / Math.max(1, polls), 2)} a poll)`)
    const busiest = [...threadsAfter].map(([name, t]) => [name, (t - (threadsBefore.get(name) ?? 0)) / CLK_TCK] as const).filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1])
    console.log(`  CPU by thread   ${busiest.slice(0, 6).map(([name, s]) => `${name} ${fmt((s / elapsed) * 100, 2)}%`).join(", ")}`)
    const state = await pollState()
    console.log(`  one connection  ${JSON.stringify(state)}`)
    if (process.argv.includes("--check") && !(peakRss < 1024 * MB && cpuPct < 5)) process.exitCode = 1
  } finally {
    await engine.kill("SIGTERM")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await db.drop()
    await deleteStreams(prefix.toUpperCase())
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
