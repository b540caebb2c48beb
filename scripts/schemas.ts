/** The generated schema files, by path relative to the repository root. */
import { Config } from "@concord/core"

const pretty = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`

export const generated = (): Record<string, string> => ({
  "deploy/tenant-config.schema.json": pretty(Config.jsonSchema())
})
