/**
 * `concord serve`: what `npm start` runs.
 */
import { Command } from "effect/cli"
import { runnable } from "../Main.ts"

export const serve = Command.make("serve", {}, () => runnable).pipe(
  Command.withDescription("Run a Concord node (HTTP API, actors, consumers); embedded Postgres and NATS when DATABASE_URL / NATS_URL are unset")
)
