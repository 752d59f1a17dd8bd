/**
 * Fixity audits at rest (DESIGN §4 invariant 8: copies at rest are re-verified on a schedule).
 * At every readable location of a site, copies whose last verification is older than the cycle
 * (`policy.audit.cycleDays`, `tapeCycleDays` at nearline locations; never verified first, then
 * oldest first) are read back through the storage port and their bytes hashed against the
 * checksum the copy was recorded with. The reading is paced to the location's
 * `bytesPerSecond`, so an audit never crowds out the work the location is there for.
 *
 * - good: `verified_at` becomes now (the copy is known good again, as of this read), recorded
 *   in one update for up to 100 copies or a second's reads, and when the job ends;
 * - bytes differ (read twice, so one bad read never condemns a copy): CORRUPT, found by `audit`;
 * - gone (and still gone when asked again): MISSING, found by `audit`;
 * - the storage unavailable: the job fails and is retried; nothing is recorded of the copy.
 *
 * Only PRESENT copies at SOURCE, BUFFER and LONG_TERM_ARCHIVE locations are audited. A CORRUPT or
 * MISSING copy is repair's to replace: re-reading it every cycle would spend the budget on bytes
 * known bad. PROCESSING locations are the scientists' working space: their STAGED copies live
 * days, not cycles, and are staged again from the archive on demand.
 *
 * One job per location at a time (a singleton key); a job reads about `jobSeconds` of budget
 * and ends, so it stays short, and the planner sends the next while copies are due. A job killed
 * at any instant leaves only copies not yet re-verified, which stay due.
 */
import { Checksum, Ids, StorageError, type StorageDriver, Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"
import { JobQueue, schema as jobSchema } from "../engine/JobQueue.js"
import * as AuditMetrics from "./AuditMetrics.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Pacer from "./internal/Pacer.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "audit"

/** An audit job: the due copies of one location. */
const Job = Schema.Struct({ locationId: Ids.DataLocationId })

/**
 * Each location's own audit settings (`audit:` on a location in the configuration), by location
 * name. Empty unless the process provides them: every location then follows `policy.audit`.
 */
export class LocationAudits extends Context.Reference<LocationAudits>()("@ccat/server/LocationAudits", {
  defaultValue: (): ReadonlyMap<string, Topology.LocationAuditConfig> => new Map()
}) {}

/** The per-location settings of a topology, for `LocationAudits`. */
export const locationAuditsOf = (topology: Topology.Topology): ReadonlyMap<string, Topology.LocationAuditConfig> =>
  new Map(topology.sites.flatMap((s) => s.locations.flatMap((l) => (l.audit === undefined ? [] : [[l.name, l.audit] as const]))))

/** The settings that apply at a location: its own, else the policy's. */
export const settingsOf = (policy: Topology.AuditConfig, own: Topology.LocationAuditConfig | undefined) => ({
  bytesPerSecond: own?.bytesPerSecond ?? policy.bytesPerSecond,
  cycleDays: own?.cycleDays ?? policy.cycleDays,
  tapeCycleDays: own?.tapeCycleDays ?? policy.tapeCycleDays,
  inventoryEveryHours: own?.inventoryEveryHours ?? policy.inventoryEveryHours
})

/** The settings of a location, from the policy and the location's overrides. */
export const settingsAt = (locationName: string) =>
  Effect.gen(function* () {
    const policy = yield* LifecyclePolicy
    const own = (yield* LocationAudits).get(locationName)
    return settingsOf(policy.audit, own)
  })

/** Whether audits read a location's copies: readable, and not a scientists' PROCESSING space. */
const audited = (location: Sites.Location) => location.readable && location.type !== "PROCESSING"

/** The cycle in seconds at a location: nearline storage has its own, longer one. */
const cycleSeconds = (settings: ReturnType<typeof settingsOf>, nearline: boolean) =>
  Math.round((nearline ? settings.tapeCycleDays : settings.cycleDays) * 86_400)

/** A copy due for an audit. */
interface DueCopy {
  readonly id: string
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  readonly status: "PRESENT" | "STAGED"
}

/**
 * Due copies of a location, never verified first, then oldest verified first. The two kinds are
 * read apart, each a range of the audit index, so a location with nothing due costs one descent
 * rather than a pass over every copy it holds. The oldest are ordered `nulls first`, as the index
 * holds them (no null is in that range, so the order is the same): with the default `nulls last`
 * PostgreSQL cannot take the index's order and sorts every due copy to return the first few,
 * which at an archive a decade old is most of its copies.
 */
const dueCopies = (locationId: string, cycle: number, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<DueCopy>`
      (select id, path, size_bytes, checksum, status::text as status from physical_copy
       where data_location_id = ${locationId} and status in ('PRESENT', 'STAGED') and verified_at is null
       order by id limit ${limit})
      union all
      (select id, path, size_bytes, checksum, status::text as status from physical_copy
       where data_location_id = ${locationId} and status in ('PRESENT', 'STAGED') and verified_at < now() - make_interval(secs => ${cycle})
       order by verified_at nulls first, id limit ${limit})
      limit ${limit}`)

/** What one audit job did: its own accounting, logged and returned to callers that ask. */
export interface Report {
  readonly location: string
  /** Copies read back, whatever was found. */
  readonly copies: number
  readonly good: number
  readonly corrupt: number
  readonly missing: number
  /** Bytes read from storage, second reads of suspect copies included. */
  readonly bytes: number
  /** Milliseconds the job spent reading, by the Effect clock. */
  readonly elapsedMillis: number
  /** The location's budget the job was paced to. */
  readonly bytesPerSecond: number
}

/** What reading a copy found. */
type Outcome =
  | { readonly _tag: "Read"; readonly checksum: Checksum.Checksum; readonly size: number }
  | { readonly _tag: "Corrupt"; readonly detail: string }
  | { readonly _tag: "NotFound" }

/** Reads a copy through the port part by part, hashing each part, paced to the budget. */
const readCopy = (storage: StorageDriver.Service, copy: DueCopy, pacer: Pacer.Pacer) =>
  Effect.suspend(() => {
    const algorithm = Checksum.parse(copy.checksum).algorithm
    const hash = createHash(Checksum.nodeHashName[algorithm])
    return storage.readEach(copy.path, (part) => Effect.zipRight(Effect.sync(() => hash.update(part)), pacer.take(part.length))).pipe(
      Effect.map((size): Outcome => ({ _tag: "Read", checksum: Checksum.make(algorithm, hash.digest("hex")), size })),
      Effect.catchIf(StorageError.isStorageError, (e) =>
        e.reason === "NotFound"
          ? Effect.succeed<Outcome>({ _tag: "NotFound" })
          : e.reason === "Corrupt"
          ? Effect.succeed<Outcome>({ _tag: "Corrupt", detail: e.message })
          : Effect.fail(e))
    )
  })

/** Whether a read shows the recorded bytes. */
const matches = (copy: DueCopy, outcome: Outcome) =>
  outcome._tag === "Read" && outcome.checksum === copy.checksum && outcome.size === Number(copy.sizeBytes)

/**
 * Good reads recorded in one ops-db update: at most this many, written with the first good read
 * `goodFlushMillis` or more after the last update, and when the job ends, however it ends. One
 * update per copy cost a round trip per copy to a database on the same machine: measured with
 * bench/audit.ts on 512 copies of 2 MiB under load, leaving the updates out took the audit from
 * 5-6.5 s to 2.5-4 s.
 */
const goodPerUpdate = 100

/** Milliseconds after an update from which the next good read is written at once (see `goodPerUpdate`). */
const goodFlushMillis = 1000

/** Records good reads: each copy verified now, if it is still what was read. */
const recordGood = (copies: ReadonlyArray<DueCopy>) =>
  copies.length === 0
    ? Effect.void
    : Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`update physical_copy p set verified_at = now(), updated_at = now()
          from unnest(${copies.map((c) => c.id)}::uuid[], ${copies.map((c) => c.status)}::text[], ${
            copies.map((c) => c.checksum as string)
          }::text[])
            as v(id, status, checksum)
          where p.id = v.id and p.status::text = v.status and p.checksum::text = v.checksum`.pipe(Effect.asVoid))

/** Adds a job's figures to the location's audit record. */
const recordAudit = (locationId: string, r: { copies: number; bytes: number; corrupt: number; missing: number }) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`insert into location_audit (data_location_id, last_audit_at, copies_audited, bytes_audited, corrupt_found, missing_found)
        values (${locationId}, now(), ${r.copies}, ${r.bytes}, ${r.corrupt}, ${r.missing})
        on conflict (data_location_id) do update set last_audit_at = now(),
          copies_audited = location_audit.copies_audited + excluded.copies_audited,
          bytes_audited = location_audit.bytes_audited + excluded.bytes_audited,
          corrupt_found = location_audit.corrupt_found + excluded.corrupt_found,
          missing_found = location_audit.missing_found + excluded.missing_found,
          updated_at = now()`
  )

/** Options of an audit job. */
export interface AuditOptions {
  /** Seconds of the location's budget one job reads (default 60); at least one copy is read. */
  readonly jobSeconds?: number | undefined
}

/**
 * Audits the due copies of one location that fit one job's budget (`bytesPerSecond × jobSeconds`),
 * oldest-verified first. Returns the job's own accounting.
 */
export const auditLocation = Effect.fn("Audit.auditLocation")(function* (site: string, locationId: string, options: AuditOptions = {}) {
  const location = yield* Sites.location(locationId)
  const settings = yield* settingsAt(location.name)
  const empty: Report = {
    location: location.name,
    copies: 0,
    good: 0,
    corrupt: 0,
    missing: 0,
    bytes: 0,
    elapsedMillis: 0,
    bytesPerSecond: settings.bytesPerSecond
  }
  if (!audited(location) || settings.bytesPerSecond <= 0) return empty
  const storage = yield* Effect.flatMap(Storages, (s) => s.of(location))
  const nearline = storage.capabilities.nearline
  const budget = settings.bytesPerSecond * (options.jobSeconds ?? 60)
  const candidates = yield* dueCopies(location.id, cycleSeconds(settings, nearline), 1000)
  const copies: Array<DueCopy> = []
  let planned = 0
  for (const c of candidates) {
    if (copies.length > 0 && planned + Number(c.sizeBytes) > budget) break
    copies.push(c)
    planned += Number(c.sizeBytes)
  }
  if (copies.length === 0) return empty
  // tape: what a cache in front of the medium holds is dropped first, so the audit reads the
  // medium itself; one recall for the whole batch, which the driver orders by volume and
  // position; copies that were offline are taken offline again afterwards
  const offline: Array<string> = []
  if (nearline) {
    for (const c of copies) {
      const info = yield* Effect.option(storage.stat(c.path))
      if (info._tag === "Some" && info.value.online === false) offline.push(c.path)
    }
    yield* storage.release(copies.map((c) => c.path)).pipe(
      Effect.catchAll((e) => Effect.logWarning(`audit at ${location.name}: could not take the copies offline before reading them`, e))
    )
    const recalled = yield* Effect.either(storage.recall(copies.map((c) => c.path)))
    if (recalled._tag === "Left") {
      yield* Effect.logWarning(`audit at ${location.name}: the batch recall failed; each copy is read on its own`, recalled.left)
    }
  }
  const pacer = yield* Pacer.make(settings.bytesPerSecond)
  const actor = `worker:${site}`
  const tally = { copies: 0, good: 0, corrupt: 0, missing: 0, bytes: 0 }
  const labels = [site, location.name] as const
  // good reads wait here for one update of many; what a failed or interrupted job read good is
  // still recorded on the way out (best effort: copies not recorded stay due and are read again)
  const verified: Array<DueCopy> = []
  let flushedAt = yield* Clock.currentTimeMillis
  const flush = Effect.suspend(() => recordGood(verified.splice(0)))
  const finish = Effect.gen(function* () {
    yield* Effect.ignore(flush)
    if (offline.length > 0) yield* Effect.ignore(storage.release(offline))
    yield* recordAudit(location.id, tally)
    yield* AuditMetrics.add(AuditMetrics.bytesAudited, pacer.taken(), ...labels)
  })
  yield* Effect.gen(function* () {
    for (const copy of copies) {
      let outcome = yield* readCopy(storage, copy, pacer)
      // a second read before any finding: one bad read (a flaky cable, a cache) never condemns a copy
      if (!matches(copy, outcome)) outcome = yield* readCopy(storage, copy, pacer)
      tally.copies++
      if (matches(copy, outcome)) {
        verified.push(copy)
        tally.good++
        yield* AuditMetrics.add(AuditMetrics.copiesAudited, 1, ...labels, { outcome: "good" })
        const now = yield* Clock.currentTimeMillis
        if (verified.length >= goodPerUpdate || now - flushedAt >= goodFlushMillis) {
          yield* flush
          flushedAt = now
        }
        continue
      }
      if (outcome._tag === "NotFound") {
        if (yield* storage.exists(copy.path)) continue
        const moved = yield* CopyFindings.mark(copy.id, "MISSING", {
          actor,
          by: "audit",
          detail: `audit at ${location.name}: ${copy.path} is gone`
        })
        if (moved) tally.missing++
        yield* AuditMetrics.add(AuditMetrics.copiesAudited, 1, ...labels, { outcome: "missing" })
        continue
      }
      const detail = outcome._tag === "Read"
        ? `audit at ${location.name}: ${copy.path} read twice as ${outcome.size} bytes with ${outcome.checksum}; recorded ${copy.sizeBytes} bytes with ${copy.checksum}`
        : `audit at ${location.name}: ${copy.path}: ${outcome.detail}`
      const moved = yield* CopyFindings.mark(copy.id, "CORRUPT", {
        actor,
        by: "audit",
        detail,
        expectedChecksum: copy.checksum,
        actualChecksum: outcome._tag === "Read" ? outcome.checksum : undefined
      })
      if (moved) tally.corrupt++
      yield* AuditMetrics.add(AuditMetrics.copiesAudited, 1, ...labels, { outcome: "corrupt" })
    }
    yield* flush
  }).pipe(Effect.ensuring(Effect.ignore(finish)))
  const report: Report = {
    location: location.name,
    ...tally,
    bytes: pacer.taken(),
    elapsedMillis: yield* pacer.elapsedMillis,
    bytesPerSecond: settings.bytesPerSecond
  }
  const what = `audit at ${location.name}: ${report.copies} copies (${report.bytes} bytes in ${report.elapsedMillis} ms): ` +
    `${report.good} good, ${report.corrupt} corrupt, ${report.missing} missing`
  yield* report.corrupt + report.missing > 0 ? Effect.logWarning(what) : Effect.logInfo(what)
  return report
})

/**
 * Sends an audit job for each audited location of the site that has copies due and no audit
 * job queued or running (a singleton key per location keeps one, however many planners run).
 */
export const plan = Effect.fn("Audit.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const storages = yield* Storages
  const queue = queueName(site, name)
  const idle = yield* sql<{ id: string }>`
    select l.id from data_location l join site s on s.id = l.site_id
    where s.name = ${site} and l.readable and l.type <> 'PROCESSING' and not exists (
      select 1 from ${sql(jobSchema)}.job j
      where j.name = ${queue} and j.singleton_key = ${"location:"} || l.id::text and j.state::text in ('created', 'retry', 'active'))
    order by l.name`
  let sent = 0
  for (const { id } of idle) {
    const location = yield* Sites.location(id)
    const settings = yield* settingsAt(location.name)
    if (settings.bytesPerSecond <= 0) continue
    // a location whose storage cannot be built now gets no job; its other stages say why
    const storage = yield* Effect.option(storages.of(location))
    if (storage._tag === "None") continue
    const due = yield* dueCopies(id, cycleSeconds(settings, storage.value.capabilities.nearline), 1)
    if (due.length === 0) continue
    if ((yield* jobs.send(queue, { locationId: id }, { singletonKey: `location:${id}` })) !== null) sent++
  }
  return sent
})

/** Runs one audit job. */
export const work = Effect.fn("Audit.work")(function* (site: string, data: unknown) {
  const job = yield* Schema.decodeUnknown(Job)(data)
  yield* auditLocation(site, job.locationId)
})

/** The audit stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  // a single copy larger than a job's budget is still read whole, paced: Topology refuses a budget
  // too small to read the largest package within this expiry
  queue: { policy: "stately", retryLimit: 10, retryDelaySeconds: 60, retryBackoff: true, expireInSeconds: Topology.auditJobHours * 3600 },
  concurrency: 2
}
