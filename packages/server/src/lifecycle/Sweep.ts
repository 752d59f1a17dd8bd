/**
 * Sweeping temporary files (issue 6): a writer killed mid-write (a SIGKILLed worker, a power
 * cut) leaves its file under a temporary name, which no state in the ops-db knows of and no
 * retry reuses, so a long-running site would slowly fill its disks with them. Once an
 * `interval` per location, a job at the site asks the location's storage to remove its
 * temporary files untouched for `policy.sweepTemporaryAfter` (24 hours unless configured; a live
 * write touches its file with every write). Every BUFFER, LONG_TERM_ARCHIVE and PROCESSING
 * location of the site whose driver can sweep is swept, archives too: a killed archiver leaves
 * the same leftovers, and a sweep never touches a committed object. SOURCE locations are never
 * swept: nothing of ours writes there, and what is there is the instruments' raw data, perhaps
 * not yet archived, which no name pattern may ever put at risk. A location whose deletions an
 * operator switched off is left alone.
 *
 * The outcome is logged and counted (`ccat_temporary_files_swept_total`,
 * `ccat_temporary_file_bytes_swept_total`), never written to the ops-db: these files are not
 * domain objects. When the last sweep ran is read from the job queue itself.
 */
import { Ids } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Schema from "effect/Schema"
import { JobQueue, schema as jobSchema } from "../engine/JobQueue.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "sweep"

/** A sweep job: one location's temporary files. */
const Job = Schema.Struct({ locationId: Ids.DataLocationId })

/**
 * How often a location is swept. Far shorter than any sensible age, so a leftover goes soon
 * after it is old enough; a sweep that finds nothing costs one walk of the location's folders.
 */
export const interval = Duration.hours(1)

/** The singleton key of a location's sweep job: one queued (and one running) per location. */
const locationKey = (locationId: string) => `location:${locationId}`

/** Temporary files removed, per site and location, by the sweeps this process ran. */
export const filesSwept = Metric.counter("ccat_temporary_files_swept_total", {
  description: "Temporary files killed writers left, removed by the sweeps this process ran, per site and location.",
  incremental: true
})

/** Their bytes. */
export const bytesSwept = Metric.counter("ccat_temporary_file_bytes_swept_total", {
  description: "Bytes of the temporary files removed by the sweeps this process ran, per site and location.",
  incremental: true
})

/**
 * Sends a sweep job for each location of the site whose deletions are switched on, whose driver
 * can sweep, and that has had no sweep job within the last `interval` (queued, running or finished: pg-boss keeps
 * finished jobs for 12 hours before archiving them, far longer than the interval). Several
 * planners of one site may decide at once; the queue's singleton key keeps one job per location.
 */
export const plan = Effect.fn("Sweep.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const queue = queueName(site, name)
  const due = yield* sql<{ id: string }>`
    select l.id from data_location l join site s on s.id = l.site_id
    where s.name = ${site} and l.deletable and l.type <> 'SOURCE' and not exists (
      select 1 from ${sql(jobSchema)}.job j
      where j.name = ${queue} and j.singleton_key = ${"location:"} || l.id::text
        and (j.state::text in ('created', 'retry', 'active')
          or j.created_on > now() - make_interval(secs => ${Duration.toSeconds(interval)})))
    order by l.name`
  const storages = yield* Storages
  let sent = 0
  for (const { id } of due) {
    // a location whose driver keeps no temporary files (or cannot be built: its stages say why) gets no job
    const storage = yield* Effect.option(storages.of(yield* Sites.location(id)))
    if (storage._tag === "None" || !storage.value.capabilities.sweepTemporary) continue
    if ((yield* jobs.send(queue, { locationId: id }, { singletonKey: locationKey(id) })) !== null) sent++
  }
  return sent
})

/** Sweeps one location: its storage's temporary files older than the policy's age. */
export const work = Effect.fn("Sweep.work")(function* (site: string, data: unknown) {
  const job = yield* Schema.decodeUnknown(Job)(data)
  const policy = yield* LifecyclePolicy
  const storages = yield* Storages
  const location = yield* Sites.location(job.locationId)
  if (!location.deletable) return yield* Effect.logDebug(`sweep at ${location.name}: deletions are switched off; nothing swept`)
  if (location.type === "SOURCE") {
    return yield* Effect.logWarning(`sweep at ${location.name}: a SOURCE location holds the instruments' raw data and is never swept`)
  }
  const storage = yield* storages.of(location)
  if (!storage.capabilities.sweepTemporary) return yield* Effect.logDebug(`sweep at ${location.name}: its driver keeps no temporary files`)
  const swept = yield* storage.sweepTemporary({ olderThan: Duration.millis(policy.sweepTemporaryAfter) })
  const labels = [MetricLabel.make("site", site), MetricLabel.make("location", location.name)]
  yield* Metric.incrementBy(Metric.taggedWithLabels(filesSwept, labels), swept.files)
  yield* Metric.incrementBy(Metric.taggedWithLabels(bytesSwept, labels), swept.bytes)
  const what = `sweep at ${location.name}: removed ${swept.files} temporary files (${swept.bytes} bytes) untouched for ` +
    Duration.format(Duration.millis(policy.sweepTemporaryAfter))
  if (swept.failed > 0) yield* Effect.logWarning(`${what}; ${swept.failed} could not be removed, the next sweep tries again`)
  else if (swept.files > 0) yield* Effect.logInfo(what)
  else yield* Effect.logDebug(what)
})

/** The sweep stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue: { policy: "stately", retryLimit: 3, retryDelaySeconds: 60, retryBackoff: true, expireInSeconds: 6 * 3600 },
  concurrency: 1
}
