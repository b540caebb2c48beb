/**
 * Runs the real `concord` binary (bin/concord.js) as a child process, the
 * way an operator does, against an engine running in the test process.
 * The child is spawned asynchronously: the engine keeps serving meanwhile.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import { connect } from "nats"
import type { TestEngine } from "./engine.ts"
import { eventually } from "./engine.ts"
import { natsUrl } from "./services.ts"

export const root = join(import.meta.dirname, "../..")
export const bin = join(root, "bin/concord.js")

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `concord …args` with `env` added to a clean environment (no CONCORD_* or NATS_* from the test process). */
export const concord = (args: ReadonlyArray<string>, env: Record<string, string> = {}, timeoutMs = 90_000): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CONCORD_") && !k.startsWith("NATS_")))
    const child = spawn(process.execPath, [bin, ...args], { env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`concord ${args.join(" ")} did not finish in ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`))
    }, timeoutMs)
    child.once("error", reject)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** The environment an operator of `engine` sets: API URL, admin key, NATS URL and prefix. */
export const operatorEnv = (engine: TestEngine): Record<string, string> => ({
  CONCORD_URL: engine.url,
  CONCORD_ADMIN_KEY: engine.adminKey,
  NATS_URL: natsUrl,
  CONCORD_NATS_PREFIX: engine.natsPrefix
})

/** Parses `--json` output, with the whole result in the message when it is not JSON. */
export const json = (r: CliResult): any => {
  try {
    return JSON.parse(r.stdout)
  } catch {
    throw new Error(`not JSON (exit ${r.code}): stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`)
  }
}

/** A misuse or failure report: exactly one line on stderr, starting `concord: `, no stack trace. */
export const oneLineError = (r: CliResult): string => {
  const lines = r.stderr.trim().split("\n")
  if (lines.length !== 1 || !lines[0]?.startsWith("concord: ") || /^\s+at .+:\d+/m.test(r.stderr)) {
    throw new Error(`expected one error line on stderr, got: ${JSON.stringify(r.stderr)} (stdout ${JSON.stringify(r.stdout)})`)
  }
  return lines[0]
}

/** Resolves once the engine's inbound consumer has nothing pending or unacked (and stayed so for a moment). */
export const drained = async (engine: TestEngine, timeoutMs = 60_000): Promise<void> => {
  const nc = await connect({ servers: natsUrl })
  try {
    const jsm = await nc.jetstreamManager()
    const prefix = engine.natsPrefix.toUpperCase()
    let quietSince = 0
    await eventually(async () => {
      const info = await jsm.consumers.info(`${prefix}_CONCORD_IN`, `${prefix}_concord-engine`)
      const idle = info.num_pending === 0 && info.num_ack_pending === 0
      if (!idle) quietSince = 0
      else if (quietSince === 0) quietSince = Date.now()
      return idle && Date.now() - quietSince > 500 ? true : undefined
    }, timeoutMs, 100)
  } finally {
    await nc.close()
  }
}

/** Publishes raw bytes to an (unprefixed) subject of the engine's NATS deployment, as a producer on NATS would. */
export const publish = async (engine: TestEngine, subject: string, data: string, msgID: string): Promise<number> => {
  const nc = await connect({ servers: natsUrl })
  try {
    const ack = await nc.jetstream().publish(`${engine.natsPrefix}.${subject}`, new TextEncoder().encode(data), { msgID })
    return ack.seq
  } finally {
    await nc.close()
  }
}

/** The last sequence of one of the engine's streams (`IN`, `DLQ`, `EVENTS`). */
export const lastSeq = async (engine: TestEngine, stream: "IN" | "DLQ" | "EVENTS"): Promise<number> => {
  const nc = await connect({ servers: natsUrl })
  try {
    const jsm = await nc.jetstreamManager()
    return (await jsm.streams.info(`${engine.natsPrefix.toUpperCase()}_CONCORD_${stream}`)).state.last_seq
  } finally {
    await nc.close()
  }
}
