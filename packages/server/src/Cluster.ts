/**
 * The actor runtime: `effect/cluster` sharding with the connection entity.
 *
 * - `CONCORD_CLUSTER=single` (default): `SingleRunner`, everything in this
 *   process (mailbox and reply storage in Postgres).
 * - `CONCORD_CLUSTER=socket`: several nodes sharing the Postgres database;
 *   `SqlRunnerStorage` assigns shards to runners with advisory locks and moves
 *   them when a node dies; runners talk over sockets. Each node needs
 *   `CONCORD_RUNNER_HOST` / `CONCORD_RUNNER_PORT` reachable by the others.
 *
 * Both run the cluster's workflow engine (`effect/workflow` on the same
 * sharding and its SQL message storage): a long job (a backfill) is a
 * workflow whose completed activities are persisted, so a killed node's job
 * resumes at its last completed activity when a node (this one restarted,
 * or another) takes over its shard.
 */
import { NodeClusterSocket, NodeCrypto } from "@effect/platform-node"
import * as ConnectionActor from "@concord/reconciler/ConnectionActor"
import { Layer, Option } from "effect"
import { ClusterWorkflowEngine, RunnerAddress, SingleRunner } from "effect/cluster"

const mode = (): "single" | "socket" => (process.env.CONCORD_CLUSTER === "socket" ? "socket" : "single")

/** Sharding for this process (needs the SQL client). */
export const sharding = () => {
  if (mode() === "socket") {
    const host = process.env.CONCORD_RUNNER_HOST ?? "127.0.0.1"
    const port = Number(process.env.CONCORD_RUNNER_PORT ?? "34431")
    return NodeClusterSocket.layer({
      storage: "sql",
      shardingConfig: {
        runnerAddress: Option.some(RunnerAddress.make(host, port)),
        runnerListenAddress: Option.some(RunnerAddress.make(process.env.CONCORD_RUNNER_LISTEN_HOST ?? host, port))
      }
    }).pipe(Layer.provide(NodeCrypto.layerDigest))
  }
  return SingleRunner.layer({ runnerStorage: "memory" }).pipe(Layer.provide(NodeCrypto.layerDigest))
}

/** The connection entity and the workflow engine registered with sharding, plus sharding itself. */
export const layer = () =>
  Layer.merge(ConnectionActor.layer, ClusterWorkflowEngine.layer).pipe(Layer.provideMerge(sharding()))
