/**
 * Runs the Xero sandbox standalone:
 *
 *   node packages/providers/src/xero/main.ts --port 4010 [--no-limits] [--tenants 2] [--webhook-url URL]
 *
 * Prints the API base URL, tenant ids and OAuth credentials, plus a ready
 * access token; stops on Ctrl-C (SIGINT/SIGTERM).
 */
import { Effect } from "effect"
import { start } from "./Sandbox.ts"

const args = process.argv.slice(2)
const value = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}
const port = Number(value("port") ?? "4010")
const tenants = Number(value("tenants") ?? "1")
const webhookUrl = value("webhook-url")

const program = Effect.gen(function*() {
  const sandbox = yield* start({
    port,
    accounts: tenants,
    limits: !args.includes("--no-limits"),
    ...(webhookUrl === undefined ? {} : { webhookUrl })
  })
  const tokens = sandbox.issueTokens()
  console.log(sandbox.describe())
  console.log(`  access token:     ${tokens.access_token}  (30 minutes)`)
  console.log(`  refresh token:    ${tokens.refresh_token}`)
  yield* Effect.callback<void>((resume) => {
    const stop = () => resume(Effect.void)
    process.once("SIGINT", stop)
    process.once("SIGTERM", stop)
  })
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
