/**
 * A private `nats-server -js` for one chaos seed, on its own port and store
 * directory, that the harness can stop and start again on the same port (the
 * shared server on 4222 is never touched).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect } from "nats"
import { freePort } from "../../packages/server/src/storage/Database.ts"

const binary = (): string => {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/bin", "/usr/bin"])) {
    const candidate = join(dir, "nats-server")
    if (existsSync(candidate)) return candidate
  }
  throw new Error("nats-server is not installed (the chaos harness starts a private one)")
}

export interface PrivateNats {
  readonly url: string
  /** SIGKILL or SIGTERM the server, wait `downMs`, start it again on the same port and store. */
  readonly restart: (options?: { readonly signal?: NodeJS.Signals; readonly downMs?: number }) => Promise<void>
  readonly stop: () => Promise<void>
}

export const startPrivateNats = async (): Promise<PrivateNats> => {
  const bin = binary()
  const port = await freePort()
  const store = mkdtempSync(join(tmpdir(), "concord-chaos-nats-"))
  const url = `nats://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  let stderr = ""

  const up = async () => {
    stderr = ""
    const c = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", store], { stdio: ["ignore", "ignore", "pipe"] })
    c.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
    })
    child = c
    const deadline = Date.now() + 15_000
    for (;;) {
      if (c.exitCode !== null) throw new Error(`nats-server exited with ${c.exitCode}: ${stderr.trim()}`)
      const ok = await connect({ servers: url, timeout: 500, reconnect: false }).then(async (nc) => {
        try {
          // JetStream answers only once the store is recovered.
          await (await nc.jetstreamManager()).getAccountInfo()
          return true
        } catch {
          return false
        } finally {
          await nc.close()
        }
      }, () => false)
      if (ok) return
      if (Date.now() > deadline) throw new Error(`nats-server did not start on ${url}: ${stderr.trim()}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  const down = (signal: NodeJS.Signals) =>
    new Promise<void>((done) => {
      const c = child
      child = undefined
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return done()
      c.once("exit", () => done())
      c.kill(signal)
      setTimeout(() => c.kill("SIGKILL"), 5000).unref()
    })

  await up()
  return {
    url,
    restart: async (o = {}) => {
      await down(o.signal ?? "SIGKILL")
      await new Promise((r) => setTimeout(r, o.downMs ?? 500))
      await up()
    },
    stop: async () => {
      await down("SIGTERM")
      rmSync(store, { recursive: true, force: true })
    }
  }
}
