/**
 * `concord sandbox <quickbooks|xero>`: runs a provider's local emulator
 * standalone (the same `start` the tests, the demo and the providers' own
 * `main.ts` use) and prints its description: base URL, accounts, OAuth
 * client, webhook secret and a ready token pair. Serves until interrupted.
 */
import type { SandboxHandle } from "@concord/providers/SandboxKit"
import { Cause, Console, Effect, Option, type Scope } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliFailure, jsonFlag } from "./Output.ts"

const nonNegative = (name: string) => Flag.Int(name).pipe(Flag.filter((n) => n >= 0, (n) => `--${name} must be 0 or more, got ${n}`))

export const sandbox = Command.make(
  "sandbox",
  {
    provider: Argument.Literals("provider", ["quickbooks", "xero"]).pipe(Argument.withDescription("Which provider to emulate")),
    port: Flag.optional(nonNegative("port").pipe(Flag.withDescription("Port to listen on (default: a free port)"))),
    host: Flag.String("host").pipe(Flag.withDescription("Address to bind"), Flag.withDefault("127.0.0.1")),
    limits: Flag.Boolean("limits").pipe(Flag.withDescription("Enforce the provider's real rate limits (--no-limits to switch them off)"), Flag.withDefault(true)),
    seed: Flag.optional(nonNegative("seed").pipe(Flag.withDescription("Seed for generated ids and fault injection (repeatable runs)"))),
    accounts: Flag.Int("accounts").pipe(Flag.withDescription("How many provider accounts (QuickBooks realms, Xero organisations)"), Flag.withDefault(1), Flag.filter((n) => n >= 1, () => "--accounts must be 1 or more")),
    webhookUrl: Flag.optional(Flag.String("webhook-url").pipe(Flag.withMetavar("URL"), Flag.withDescription("Where to deliver webhooks (e.g. http://127.0.0.1:8080/webhooks/<provider>)"))),
    json: jsonFlag
  },
  Effect.fn(function*(input) {
    const options = {
      host: input.host,
      limits: input.limits,
      accounts: input.accounts,
      ...(Option.isSome(input.port) ? { port: input.port.value } : {}),
      ...(Option.isSome(input.seed) ? { seed: input.seed.value } : {}),
      ...(Option.isSome(input.webhookUrl) ? { webhookUrl: input.webhookUrl.value } : {})
    }
    // The emulators load only when asked for, so the other commands start fast.
    const start: (o: typeof options) => Effect.Effect<SandboxHandle, never, Scope.Scope> = input.provider === "quickbooks"
      ? (yield* Effect.promise(() => import("@concord/providers/quickbooks/Sandbox"))).start
      : (yield* Effect.promise(() => import("@concord/providers/xero/Sandbox"))).start
    const sb = yield* start(options).pipe(
      // The emulator's server fails to listen as a defect (port taken, bad host): say so in one line.
      Effect.catchCause((cause) =>
        Effect.fail(new CliFailure({ message: `cannot start the ${input.provider} sandbox on ${input.host}:${Option.getOrElse(input.port, () => 0)}: ${describe(cause)}`, exitCode: 1 }))
      )
    )
    const tokens = sb.issueTokens()
    if (input.json) {
      yield* Console.log(JSON.stringify({
        provider: sb.provider,
        baseUrl: sb.baseUrl,
        rootUrl: sb.rootUrl,
        accounts: sb.accounts,
        clientId: sb.clientId,
        clientSecret: sb.clientSecret,
        webhookSecret: sb.webhookSecret,
        endpoints: sb.endpoints,
        limits: input.limits,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        expiresIn: tokens.expires_in
      }))
    } else {
      yield* Console.log(sb.describe())
      yield* Console.log(`  access token    ${tokens.access_token}   (expires in ${tokens.expires_in} s)`)
      yield* Console.log(`  refresh token   ${tokens.refresh_token}`)
      yield* Console.log("\nServing until interrupted (Ctrl-C).")
    }
    return yield* Effect.never
  }, Effect.scoped)
).pipe(
  Command.withDescription("Run a provider sandbox (a local emulator of its HTTP API) standalone until interrupted"),
  Command.withExamples([
    { command: "concord sandbox quickbooks --port 4010 --no-limits", description: "QuickBooks Online on port 4010 without rate limits" },
    { command: "concord sandbox xero --json", description: "Xero on a free port; one JSON line with its URLs and credentials" }
  ])
)

const describe = (cause: Cause.Cause<unknown>): string => {
  const e = Cause.squash(cause)
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : e instanceof Error ? e.message : String(e)
}
