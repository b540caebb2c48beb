/**
 * Runs the QuickBooks Online sandbox standalone:
 *
 *   node packages/providers/src/quickbooks/main.ts --port 4010 [--host 127.0.0.1]
 *     [--seed 1] [--accounts 1] [--no-limits] [--webhook-url URL] [--cloudevents]
 *
 * Prints the base URL, realm ids, OAuth client credentials, the webhook
 * verifier token and a ready access/refresh token pair, then serves until
 * interrupted (Ctrl-C).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { start } from "./Sandbox.ts"

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const has = (name: string) => args.includes(`--${name}`)
const int = (name: string): number | undefined => {
  const v = flag(name)
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} needs a non-negative integer, got ${JSON.stringify(v)}`)
    process.exit(2)
  }
  return n
}

if (has("help")) {
  console.log("usage: node packages/providers/src/quickbooks/main.ts --port N [--host H] [--seed N] [--accounts N] [--no-limits] [--webhook-url URL] [--cloudevents]")
  process.exit(0)
}

const port = int("port")
const seed = int("seed")
const accounts = int("accounts")
const host = flag("host")
const webhookUrl = flag("webhook-url")

const program = Effect.gen(function*() {
  const sb = yield* start({
    ...(port === undefined ? {} : { port }),
    ...(host === undefined ? {} : { host }),
    ...(seed === undefined ? {} : { seed }),
    ...(accounts === undefined ? {} : { accounts }),
    ...(webhookUrl === undefined ? {} : { webhookUrl }),
    limits: !has("no-limits"),
    webhookFormat: has("cloudevents") ? "cloudevents" : "legacy"
  })
  const tokens = sb.issueTokens()
  yield* Console.log(sb.describe())
  yield* Console.log(`  access token    ${tokens.access_token}   (expires in ${tokens.expires_in} s)`)
  yield* Console.log(`  refresh token   ${tokens.refresh_token}`)
  yield* Console.log(`\nExample: curl -H "Authorization: Bearer ${tokens.access_token}" "${sb.baseUrl}/v3/company/${sb.realmId}/query?query=select%20*%20from%20Account&minorversion=75"`)
  return yield* Effect.never
})

NodeRuntime.runMain(Effect.scoped(program))
