/**
 * Writes the JSON Schemas generated from our Effect Schemas into deploy/:
 * tenant configuration (for editors) and, as they are added, event payloads.
 * `npm run schemas` regenerates; a test fails when a committed file is stale.
 */
import { writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { generated } from "./schemas.ts"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
for (const [file, content] of Object.entries(generated())) {
  writeFileSync(join(root, file), content)
  console.log(`wrote ${file}`)
}
