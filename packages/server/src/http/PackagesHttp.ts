/** The packages group: RawDataPackages and their journey, within the caller's scope. */
import { Api, ApiErrors, ApiSecurity, RawData, Status } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Repair from "../lifecycle/Repair.js"
import * as RepairForward from "../lifecycle/RepairForward.js"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decodeRows = decoder(RawData.RawDataPackage)
const decode = (rows: ReadonlyArray<unknown>) =>
  Effect.map(decodeRows(rows), (packages) => packages.map((p) => ({ ...p, journey: Status.journey(p.status) })))

/** The statuses of each journey, for filtering by journey in SQL. */
const statusesOf = (journey: Status.PackageJourney) => Status.statuses.filter((s) => Status.journey(s) === journey)

/**
 * An operator's repair: 409 when the package has no CORRUPT or MISSING archive copy, 422 when no
 * site holding one has a good copy there to repair from (or the package's files, filed there, to
 * write it again from) and no site will send it one; else each
 * such site's repair starts now, and the sites that send the package on are named.
 * The package row is locked so two requests at once do not both check against a half-done repair.
 */
const requestRepair = (id: string, actor: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [pkg] = yield* sql<{ checksum: string | null }>`select checksum from raw_data_package where id = ${id} for update`
    if (pkg === undefined) return yield* Access.notFound("RawDataPackage", id)
    const bad = yield* Repair.badCopies(id)
    if (bad.length === 0) {
      return yield* new ApiErrors.Conflict({
        reason: "StateConflict",
        entity: "RawDataPackage",
        id,
        fields: ["copies"],
        message: `package ${id} has no CORRUPT or MISSING archive copy: there is nothing to repair`
      })
    }
    const sites = [...new Set(bad.map((b) => b.site))]
    const started: Array<{ site: string; sources: Array<string>; startedNow: boolean }> = []
    const withoutSource: Array<string> = []
    for (const site of sites) {
      const sources = yield* Repair.goodSources(id, site)
      if (sources.length === 0) {
        // nothing to copy from, but the files were filed here (a product at PROCESSING): written again here
        const [filedHere] = yield* RepairForward.toRepackHere(site, id)
        if (filedHere === undefined) withoutSource.push(site)
        else {
          const startedNow = yield* sql.withTransaction(Repair.startNow(site, id, "repack")).pipe(
            Effect.catchAll(() => Effect.succeed(false))
          )
          started.push({ site, sources: [`written again from its files at ${filedHere.filedAt}`], startedNow })
        }
      } else {
        // in a savepoint: a failed send would otherwise abort the whole transaction; the planner still takes it up
        const startedNow = yield* sql.withTransaction(Repair.startNow(site, id)).pipe(
          Effect.catchAll((e) =>
            Effect.as(
              Effect.logWarning(`repair of package ${id} at ${site}: its job could not be sent now; the site's planner sends it`, e),
              false
            )
          )
        )
        started.push({ site, sources: sources.map((s) => s.location), startedNow })
      }
    }
    // Sites with nothing to repair from here are sent the package by a site that has it (RepairForward).
    const senders = withoutSource.length === 0 ? [] : yield* RepairForward.senders(id)
    for (const sender of senders) {
      // From a buffer copy bundling sends it within its next round; otherwise a repair job prepares it first.
      const startedNow = sender.from === "buffer" ? false : yield* sql.withTransaction(
        Repair.startNow(sender.site, id, sender.from === "archive" ? "forward" : "repack")
      ).pipe(Effect.catchAll(() => Effect.succeed(false)))
      started.push({
        site: sender.site,
        sources: [`sent on from its ${sender.from === "source" ? "files at SOURCE" : sender.from}`],
        startedNow
      })
    }
    if (started.length === 0) {
      return yield* new ApiErrors.Unprocessable({
        reason: "Invalid",
        field: "id",
        message: `package ${id} has bad archive copies at ${
          sites.join(", ")
        } but no good copy (PRESENT, verified, with the package's checksum) at ${
          sites.length === 1 ? "that site" : "those sites"
        } to repair them from, and no site a route leads from has one or all its files at SOURCE`
      })
    }
    yield* Effect.logInfo(`repair of package ${id} requested by ${actor} at ${started.map((s) => s.site).join(", ")}`)
    return {
      packageId: id as RawData.RawDataPackage["id"],
      badCopies: bad.map((b) => ({ id: b.id, status: b.status, site: b.site, location: b.location, path: b.path })),
      sites: started,
      withoutSource
    }
  })

/** The packages group's handlers. */
export const PackagesHttpLive = HttpApiBuilder.group(Api.Api, "packages", (handlers) =>
  handlers
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)]
        if (q.observationId !== undefined) where.push(sql`t.executed_obs_unit_id = ${q.observationId}`)
        if (q.moduleId !== undefined) where.push(sql`t.instrument_module_id = ${q.moduleId}`)
        if (q.kind !== undefined) where.push(q.kind === "raw" ? sql`t.data_product_id is null` : sql`t.data_product_id is not null`)
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        // Compared as the enum, not as text, so the live packages' partial index answers WAITING and FAILED.
        if (q.journey !== undefined) where.push(sql`t.status in ${sql.in(statusesOf(q.journey))}`)
        return yield* page({ table: "raw_data_package", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode })
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select t.* from raw_data_package t where t.id = ${path.id} and ${
          Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)
        }`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("RawDataPackage", path.id)
        return (yield* decode(rows))[0]
      }))
    .handle("repair", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        return yield* sql.withTransaction(requestRepair(path.id, p.name)).pipe(
          Effect.catchTag("SqlError", Effect.die)
        )
      })))
