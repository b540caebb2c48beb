#!/usr/bin/env node
// The `concord` command. Concord needs Node >= 22.19; the project ships one as
// a dependency (node_modules/.bin/node). When started by an older Node, re-run
// this same command under that one.
//
// `concord serve` also runs with a bounded V8 old space: CONCORD_MAX_HEAP_MB
// (default 1024, never above what Node would pick on this machine; 0 leaves
// Node's own default). With Node's default, which grows with the machine's
// memory, V8 lets garbage pile up to hundreds of MB under a reconciliation's
// allocation rate before it collects; bounded, the node stays well under it
// at about the same speed (bench/RESULTS.md, `npm run bench -- reconcile`).
// A --max-old-space-size given in NODE_OPTIONS or on the node command line wins.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { getHeapStatistics } from "node:v8"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const script = fileURLToPath(import.meta.url)
const args = process.argv.slice(2)

/** The old-space flag `serve` should run with, or undefined when none is needed (or one is already set). */
const heapFlag = () => {
  if (args[0] !== "serve") return undefined
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  if (given.some((a) => a.startsWith("--max-old-space-size") || a.startsWith("--max_old_space_size"))) return undefined
  const raw = (process.env.CONCORD_MAX_HEAP_MB ?? "1024").trim()
  const mb = Number(raw)
  if (raw === "" || !Number.isInteger(mb) || (mb !== 0 && mb < 64)) {
    console.error(`CONCORD_MAX_HEAP_MB must be a whole number of megabytes, at least 64 (or 0 for Node's default); got '${raw}'`)
    process.exit(2)
  }
  if (mb === 0) return undefined
  // Node sizes its default from the machine's (or the container's) memory: never raise it.
  const nodeDefaultMb = Math.floor(getHeapStatistics().heap_size_limit / 1048576)
  return mb < nodeDefaultMb ? `--max-old-space-size=${mb}` : undefined
}

const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  const bundled = join(root, "node_modules", ".bin", "node")
  if (!existsSync(bundled)) {
    console.error(`concord needs Node.js >= 22.19 (this is ${process.version}); run 'npm install' in ${root} first`)
    process.exit(2)
  }
  const flag = heapFlag()
  // Not spawnSync: a supervisor's SIGTERM to this PID must reach the real process.
  const child = spawn(bundled, [...(flag === undefined ? [] : [flag]), script, ...args], { stdio: "inherit" })
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"]
  for (const signal of forwarded) {
    process.on(signal, () => child.kill(signal))
  }
  // End as the real process ended: with its code, or killed by its signal (our handlers off first, or the
  // signal would only be forwarded to the dead child).
  child.on("exit", (code, signal) => {
    if (signal !== null) {
      for (const s of forwarded) process.removeAllListeners(s)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code ?? 1)
  })
} else {
  const flag = heapFlag()
  if (flag !== undefined && typeof process.execve === "function") {
    // Replaces this process (same PID, no wrapper left behind): the heap limit is fixed when V8 starts.
    process.execve(process.execPath, [process.execPath, ...process.execArgv, flag, script, ...args], process.env)
  }
  const { runCli } = await import(join(root, "packages", "server", "src", "Cli.ts"))
  runCli(args)
}
