/**
 * Inventory reconciliation: a location's storage compared with the ops-db, page by page, so a
 * pass over a million objects holds one page in memory and costs one set-based query per page.
 * Once every `policy.audit.inventoryEveryHours` per SOURCE, BUFFER and LONG_TERM_ARCHIVE location
 * with a listing driver (PROCESSING locations are the scientists' working space, where files come
 * and go by hand; staged copies are staged again from the archive on demand), a pass:
 *
 * - lists the storage in key order through the port (`list` with a cursor, `pageSize` keys);
 * - dark objects: listed keys no live PhysicalCopy accounts for, written before the pass began
 *   (a write that just committed its object may not have recorded its copy yet), are recorded in
 *   `dark_object` and reported, never deleted (at BUFFER and LONG_TERM_ARCHIVE locations only:
 *   SOURCE holds the instruments' files before they are filed);
 *   writers' temporary names stay the sweep's and are skipped; a dark object a later pass no
 *   longer finds, or finds accounted for, is resolved;
 * - missing copies: PRESENT copies recorded before the pass began whose key falls in
 *   the page's key range but was not listed are asked for once more (`stat`), and only if still
 *   gone marked MISSING (found by `inventory`) for repair to replace.
 *
 * The pass keeps its place in `location_inventory` (the driver's cursor and the last key judged),
 * advanced with each page's findings in one transaction that checks the place it expects, so a
 * job killed at any instant, or two jobs on one location, judge each page at most once more.
 * A job judges `pagesPerJob` pages and ends; the planner sends the next while the pass is open.
 */
import { Ids, type StorageDriver, TemporaryNames } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { JobQueue, schema as jobSchema } from "../engine/JobQueue.js"
import { settingsAt } from "./Audit.js"
import * as AuditMetrics from "./AuditMetrics.js"
import * as CopyFindings from "./CopyFindings.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "inventory"

const Job = Schema.Struct({ locationId: Ids.DataLocationId })

/** rsync's resume folders: the next attempt's basis, which neither the inventory nor the sweep touch. */
const partialDir = ".ccat-partial"

/** Whether a key is a writer's leftover or resume state rather than an object of its own. */
export const isTemporaryKey = (key: string): boolean =>
  key.split("/").some((part) => part === partialDir || TemporaryNames.isTemporary(part))

/** Where a location's open pass stands. */
interface Pass {
  readonly cursor: string | null
  readonly lastKey: string | null
  readonly passStartedAt: Date
}

/** The open pass of a location, if one is open. */
const openPass = (locationId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Pass>`
      select cursor, last_key, pass_started_at from location_inventory
      where data_location_id = ${locationId} and pass_started_at is not null
        and (last_pass_completed_at is null or last_pass_completed_at < pass_started_at)`).pipe(Effect.map((rows) => rows[0]))

/** What one inventory job found. */
export interface Report {
  readonly location: string
  readonly pages: number
  readonly objects: number
  readonly dark: number
  readonly missing: number
  /** Whether the job finished the pass. */
  readonly completed: boolean
}

/** Options of the inventory (tests use small pages to cross page boundaries). */
export interface InventoryOptions {
  /** Keys per listing page, 1 to 1000 (default 1000). */
  readonly pageSize?: number | undefined
  /** Pages one job judges before it ends (default 100). */
  readonly pagesPerJob?: number | undefined
}

/**
 * Judges one listed page: records its dark objects, marks the copies its key range misses, and
 * moves the pass on, all in one transaction that expects the pass where it was.
 */
const judgePage = (site: string, location: Sites.Location, storage: StorageDriver.Service, pass: Pass, page: StorageDriver.ListPage) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const keys = page.items.map((i) => i.key as string)
    const final = page.cursor === undefined
    // the page covers the keys after the last one judged up to its own last (to the end on the last page)
    const low = pass.lastKey
    const high = keys[keys.length - 1] ?? low
    const judged = page.items.filter((i) => !isTemporaryKey(i.key))
    const reportsDark = location.type === "BUFFER" || location.type === "LONG_TERM_ARCHIVE"
    const old = judged.filter((i) => i.modifiedAt === undefined || i.modifiedAt < pass.passStartedAt)
    const dark = !reportsDark || old.length === 0 ? [] : yield* sql<{ key: string; size: string }>`
      select k.key, k.size from unnest(${old.map((i) => i.key as string)}::text[], ${
        old.map((i) => String(i.size))
      }::bigint[]) as k(key, size)
      where not exists (select 1 from physical_copy c
        where c.data_location_id = ${location.id} and c.path::text = k.key and c.status <> 'DELETED')`
    const unlisted = yield* sql<{ id: string; path: string }>`
      select id, path from physical_copy
      where data_location_id = ${location.id} and status = 'PRESENT' and created_at < ${pass.passStartedAt}
        and (${low}::text is null or (path::text collate "C") > (${low}::text collate "C"))
        and (${final} or (path::text collate "C") <= (${high}::text collate "C"))
        and not (path::text = any(${keys}::text[]))`
    // asked once more: an object replaced or written since the listing is not missing
    const gone: Array<{ id: string; path: string }> = []
    for (const c of unlisted) if (!(yield* storage.exists(c.path))) gone.push(c)
    // a storage that lists nothing at all while copies are recorded is more likely unmounted or
    // misconfigured than emptied: an operator looks before anything is marked
    if (low === null && final && keys.length === 0 && gone.length > 0) {
      yield* Effect.logError(
        `inventory of ${location.name}: the storage lists no object at all while ${gone.length} copies are recorded there; ` +
          "nothing is marked MISSING (is it mounted, is the bucket right?); the audit still reads each copy"
      )
      gone.length = 0
    }
    const actor = `worker:${site}`
    return yield* sql.withTransaction(Effect.gen(function* () {
      const moved = yield* sql`
        update location_inventory set cursor = ${page.cursor ?? null}, last_key = ${high},
          objects_seen = objects_seen + ${page.items.length}, dark_found = dark_found + ${dark.length}, updated_at = now(),
          last_pass_completed_at = case when ${page.cursor ?? null}::text is null then now() else last_pass_completed_at end
        where data_location_id = ${location.id} and pass_started_at = ${pass.passStartedAt}
          and cursor is not distinct from ${pass.cursor} and last_key is not distinct from ${pass.lastKey}
        returning 1`
      if (moved.length === 0) return undefined
      for (const d of dark) {
        yield* sql`
          insert into dark_object (data_location_id, path, size_bytes) values (${location.id}, ${d.key}, ${d.size})
          on conflict (data_location_id, path) where resolved_at is null do update set last_seen_at = now(), size_bytes = excluded.size_bytes`
      }
      // dark objects of this key range that are no longer there, or now accounted for
      yield* sql`
        update dark_object set resolved_at = now()
        where data_location_id = ${location.id} and resolved_at is null and first_seen_at < ${pass.passStartedAt}
          and (${low}::text is null or (path collate "C") > (${low}::text collate "C"))
          and (${final} or (path collate "C") <= (${high}::text collate "C"))
          and not (path = any(${dark.map((d) => d.key)}::text[]))`
      let missing = 0
      for (const c of gone) {
        const marked = yield* CopyFindings.mark(c.id, "MISSING", {
          actor,
          by: "inventory",
          detail: `inventory of ${location.name}: ${c.path} is not in the storage's listing, nor found when asked for`
        })
        if (marked) missing++
      }
      yield* sql`update location_inventory set missing_found = missing_found + ${missing} where data_location_id = ${location.id}`
      return { dark: dark.length, missing, objects: page.items.length }
    }))
  })

/** Runs up to `pagesPerJob` pages of the location's open pass. */
export const inventoryLocation = Effect.fn("Inventory.inventoryLocation")(
  function* (site: string, locationId: string, options: InventoryOptions = {}) {
    const location = yield* Sites.location(locationId)
    const tally = { location: location.name, pages: 0, objects: 0, dark: 0, missing: 0, completed: false }
    if (!location.readable || location.type === "PROCESSING") return tally as Report
    const storage = yield* Effect.flatMap(Storages, (s) => s.of(location))
    if (!storage.capabilities.list) return tally as Report
    const pageSize = options.pageSize ?? 1000
    for (let i = 0; i < (options.pagesPerJob ?? 100); i++) {
      const pass = yield* openPass(location.id)
      if (pass === undefined) break
      const page = yield* storage.list({ cursor: pass.cursor ?? undefined, limit: pageSize })
      const judged = yield* judgePage(site, location, storage, pass, page)
      // another job moved the pass on meanwhile: it carries on from there
      if (judged === undefined) break
      tally.pages++
      tally.objects += judged.objects
      tally.dark += judged.dark
      tally.missing += judged.missing
      yield* AuditMetrics.add(AuditMetrics.objectsInventoried, judged.objects, site, location.name)
      yield* AuditMetrics.add(AuditMetrics.inventoryFindings, judged.dark, site, location.name, { finding: "dark" })
      yield* AuditMetrics.add(AuditMetrics.inventoryFindings, judged.missing, site, location.name, { finding: "missing" })
      if (page.cursor === undefined) {
        tally.completed = true
        break
      }
    }
    const what =
      `inventory of ${location.name}: ${tally.pages} pages, ${tally.objects} objects, ${tally.dark} dark, ${tally.missing} missing` +
      (tally.completed ? "; pass complete" : "")
    yield* tally.dark + tally.missing > 0 ? Effect.logWarning(what) : Effect.logInfo(what)
    return tally as Report
  }
)

/**
 * Per readable SOURCE, BUFFER or LONG_TERM_ARCHIVE location of the site whose storage lists keys: opens a pass when the last one
 * completed `inventoryEveryHours` ago (or never ran), in the transaction that sends its job, and
 * re-sends the job of an open pass that has none queued or running.
 */
export const plan = Effect.fn("Inventory.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const storages = yield* Storages
  const queue = queueName(site, name)
  const idle = yield* sql<{ id: string; name: string }>`
    select l.id, l.name from data_location l join site s on s.id = l.site_id
    where s.name = ${site} and l.readable and l.type <> 'PROCESSING' and not exists (
      select 1 from ${sql(jobSchema)}.job j
      where j.name = ${queue} and j.singleton_key = ${"location:"} || l.id::text and j.state::text in ('created', 'retry', 'active'))
    order by l.name`
  let sent = 0
  for (const loc of idle) {
    const settings = yield* settingsAt(loc.name)
    if (settings.inventoryEveryHours <= 0) continue
    const storage = yield* Effect.option(storages.of(yield* Sites.location(loc.id)))
    if (storage._tag === "None" || !storage.value.capabilities.list) continue
    const send = jobs.send(queue, { locationId: loc.id }, { singletonKey: `location:${loc.id}` })
    if ((yield* openPass(loc.id)) !== undefined) {
      if ((yield* send) !== null) sent++
      continue
    }
    sent += yield* sql.withTransaction(Effect.gen(function* () {
      yield* sql`insert into location_inventory (data_location_id) values (${loc.id}) on conflict do nothing`
      const opened = yield* sql`
        update location_inventory set pass_started_at = date_trunc('milliseconds', now()), cursor = null, last_key = null, objects_seen = 0, updated_at = now()
        where data_location_id = ${loc.id}
          and (pass_started_at is null or last_pass_completed_at >= pass_started_at)
          and (last_pass_completed_at is null or last_pass_completed_at < now() - make_interval(secs => ${
            settings.inventoryEveryHours * 3600
          }))
        returning 1`
      if (opened.length === 0) return 0
      return (yield* send) !== null ? 1 : 0
    }))
  }
  return sent
})

/** The inventory stage with its page sizes. */
export const makeStage = (options: InventoryOptions = {}): Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> => ({
  name,
  plan,
  work: (site, data) => Effect.flatMap(Schema.decodeUnknown(Job)(data), (job) => inventoryLocation(site, job.locationId, options)),
  queue: { policy: "stately", retryLimit: 10, retryDelaySeconds: 60, retryBackoff: true, expireInSeconds: 6 * 3600 },
  concurrency: 1
})

/** The inventory stage. */
export const stage = makeStage()
