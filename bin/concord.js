#!/usr/bin/env node
// The `concord` command. Concord needs Node >= 22.19; the project ships one as
// a dependency (node_modules/.bin/node). When started by an older Node, re-run
// this same command under that one.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  const bundled = join(root, "node_modules", ".bin", "node")
  if (!existsSync(bundled)) {
    console.error(`concord needs Node.js >= 22.19 (this is ${process.version}); run 'npm install' in ${root} first`)
    process.exit(2)
  }
  // Not spawnSync: a supervisor's SIGTERM to this PID must reach the real process.
  const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" })
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"]) {
    process.on(signal, () => child.kill(signal))
  }
  child.on("exit", (code, signal) => {
    if (signal !== null) process.kill(process.pid, signal)
    process.exit(code ?? 1)
  })
} else {
  const { runCli } = await import(join(root, "packages", "server", "src", "Cli.ts"))
  runCli(process.argv.slice(2))
}
