/**
 * Writes the files generated from the code into deploy/ (see scripts/schemas.ts):
 * the tenant-config JSON Schema, the message payload JSON Schemas and the NATS
 * stream definitions. Files in deploy/schemas and deploy/nats that the code no
 * longer produces are removed. `npm run schemas`; a test fails when a
 * committed file is stale.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { generated } from "./schemas.ts"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const files = generated()
for (const [file, content] of Object.entries(files)) {
  mkdirSync(dirname(join(root, file)), { recursive: true })
  writeFileSync(join(root, file), content)
  console.log(`wrote ${file}`)
}
for (const dir of ["deploy/schemas", "deploy/nats"]) {
  for (const name of readdirSync(join(root, dir))) {
    if (name.endsWith(".json") && files[`${dir}/${name}`] === undefined) {
      rmSync(join(root, dir, name))
      console.log(`removed ${dir}/${name} (no longer generated)`)
    }
  }
}
