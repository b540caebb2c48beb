/**
 * Benchmark runner: `npm run bench -- <name>` runs bench/<name>.bench.ts;
 * `npm run bench -- all` runs every benchmark in turn. Each prints its
 * figures and the target beside them. Never part of `npm test`.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.slice(0, -".bench.ts".length))
  .sort()

const [name, ...rest] = process.argv.slice(2)
if (name === undefined || name === "--help" || (name !== "all" && !available.includes(name))) {
  console.error(`usage: npm run bench -- <name> [args]\nbenchmarks: ${available.join(", ") || "(none yet)"}, all`)
  process.exit(name === undefined || name === "--help" ? 0 : 2)
}

let failed = 0
for (const bench of name === "all" ? available : [name]) {
  console.log(`\n=== ${bench}`)
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, `${bench}.bench.ts`), ...rest], { stdio: "inherit" })
  if (r.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)
