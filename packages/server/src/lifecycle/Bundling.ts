/**
 * The bundling stage: RawDataPackages waiting in a site's BUFFER for a route towards a
 * LONG_TERM_ARCHIVE site become DataTransferPackages (a tar of package tars) that the transfer
 * stage sends. This module assembles the stage from its parts, each in its own module: the
 * planner (`BundlePlanner`: which packages wait, how bundles are cut and claimed), the recovery
 * of bundles that went wrong (`BundleRecovery`: failed, retried and revived bundles and
 * packages, tars set aside as bad) and the worker (`BundleWriter`: writing a bundle, dropping
 * faulty members). Callers and tests keep importing everything from here.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { JobQueue } from "../engine/JobQueue.js"
import * as BundlePlanner from "./BundlePlanner.js"
import * as BundleRecovery from "./BundleRecovery.js"
import { work } from "./BundleWriter.js"
import type { LifecyclePolicy } from "./Packaging.js"
import * as Routes from "./Routes.js"
import type { Stage } from "./Stage.js"
import type { Storages } from "./Storages.js"

export { name } from "./BundlePlanner.js"
export { fail } from "./BundleRecovery.js"
export { UnconfirmedRead, work } from "./BundleWriter.js"

/**
 * Plans the site's bundles: first brings back or closes the bundles and packages that went wrong
 * (`BundleRecovery`, only the recoveries that have work), then claims new bundles
 * (`BundlePlanner.claim`). Returns the jobs enqueued.
 */
export const plan = Effect.fn("Bundling.plan")(function* (site: string) {
  const [routes, needed] = yield* Effect.all([Routes.leaving(site), BundleRecovery.needed(site)], { concurrency: 2 })
  if (routes.length === 0) return 0
  if (needed.settleFailed) yield* BundleRecovery.settleFailed(site)
  const again = needed.retried ? yield* BundleRecovery.retried(site) : 0
  if (needed.revived) yield* BundleRecovery.revived(site)
  if (needed.closeEmpty) yield* BundleRecovery.closeEmpty(site)
  return again + (yield* BundlePlanner.claim(site, routes))
})

/** The bundling stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name: BundlePlanner.name,
  plan,
  work,
  queue: Routes.queues.bundle,
  concurrency: 1
}
