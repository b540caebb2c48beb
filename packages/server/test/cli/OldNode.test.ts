/**
 * `concord` started by a Node older than 22.19 (this machine's /usr/bin/node is 20) re-runs itself under the
 * bundled Node 22 as a child. A supervisor signals the PID it started, the wrapper's: the signal must reach
 * the real process, and the wrapper must end as that process ended.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "../../../..")

/** A Node older than 22.19 on this machine, if there is one. */
const oldNode = ["/usr/bin/node", "/usr/local/bin/node", "/bin/node"].find((path) => {
  if (!existsSync(path)) return false
  const [major = 0, minor = 0] = execFileSync(path, ["-p", "process.versions.node"], { encoding: "utf8" }).trim().split(".").map(Number)
  return major < 22 || (major === 22 && minor < 19)
})

/** PIDs whose parent is `pid` (from /proc: no `ps` on a bare machine). */
const childrenOf = (pid: number) =>
  readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      // pid (comm) state ppid …; comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${d}/stat`, "utf8")
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid
    } catch {
      return false
    }
  }).map(Number)

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const until = async <A>(check: () => A | undefined, timeoutMs = 30_000): Promise<A> => {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = check()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error("timed out")
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Starts `concord sandbox quickbooks` under the old Node; resolves once it serves, with the real process's PID. */
const startSandbox = async () => {
  const wrapper = spawn(oldNode as string, [join(root, "bin/concord.js"), "sandbox", "quickbooks", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  wrapper.stdout?.on("data", (d) => (out += String(d)))
  wrapper.stderr?.on("data", (d) => (out += String(d)))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => wrapper.on("exit", (code, signal) => resolve({ code, signal })))
  await until(() => (out.includes("Serving until interrupted") ? true : undefined))
  const children = childrenOf(wrapper.pid as number)
  expect(children, out).toHaveLength(1)
  return { wrapper, child: children[0] as number, ended, output: () => out }
}

const stop = (p: ChildProcess, child: number) => {
  if (alive(child)) process.kill(child, "SIGKILL")
  p.kill("SIGKILL")
}

describe.skipIf(oldNode === undefined)("concord under a Node older than 22.19", () => {
  it("a SIGTERM to the wrapper stops the real process, and the wrapper exits with its code", async () => {
    const s = await startSandbox()
    try {
      s.wrapper.kill("SIGTERM")
      const { code, signal } = await s.ended
      // The sandbox command ends on an interrupt with 130, as on Ctrl-C.
      expect({ code, signal }, s.output()).toEqual({ code: 130, signal: null })
      await until(() => (alive(s.child) ? undefined : true), 10_000)
    } finally {
      stop(s.wrapper, s.child)
    }
  }, 60_000)

  it("when the real process is killed by a signal, the wrapper ends by the same signal", async () => {
    const s = await startSandbox()
    try {
      // SIGHUP: the sandbox has no handler for it, so it dies of it.
      process.kill(s.child, "SIGHUP")
      expect(await s.ended).toEqual({ code: null, signal: "SIGHUP" })
    } finally {
      stop(s.wrapper, s.child)
    }
  }, 60_000)
})
