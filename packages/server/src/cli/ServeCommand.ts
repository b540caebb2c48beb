/**
 * `concord serve`: what `npm start` runs. The node's modules load only when
 * it runs, so the operator commands start fast.
 */
import { Effect } from "effect"
import { Command } from "effect/cli"

export const serve = Command.make("serve", {}, () => Effect.promise(() => import("../Main.ts")).pipe(Effect.flatMap((main) => main.runnable))).pipe(
  Command.withDescription("Run a Concord node (HTTP API, actors, consumers); embedded Postgres and NATS when DATABASE_URL / NATS_URL are unset")
)
