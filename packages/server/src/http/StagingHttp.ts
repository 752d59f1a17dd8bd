/**
 * The staging group: a scientist asks for observations or packages of its programs at a
 * PROCESSING location; the request and its items are created in one transaction (with the
 * request's creation event) and the staging workers take it from there. Once processing is done
 * the scientist (or an operator) releases the request, and cleanup at the site removes its folder
 * and the staged copies no other live request needs.
 */
import { Api, ApiErrors, ApiPage, ApiSecurity, EventLog, Staging, StagingApi as StagingApiModule, StorageDriverRegistry } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

/** How long staged data stays when the request does not say. */
export const defaultExpiryDays = 7

const decodeRequests = decoder(Staging.StagingRequest)
const decodeItems = decoder(Staging.StagingRequestItem)

/** Requests with their items. */
const withItems = (rows: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const requests = yield* decodeRequests(rows)
    if (requests.length === 0) return []
    const sql = yield* SqlClient.SqlClient
    const items = yield* decodeItems(
      yield* sql`select * from staging_request_item where staging_request_id in ${sql.in(requests.map((r) => r.id))} order by id`.pipe(
        Effect.orDie
      )
    )
    return requests.map((r) => ({ ...r, items: items.filter((i) => i.stagingRequestId === r.id) }))
  })

const unprocessable = (reason: ApiErrors.Unprocessable["reason"], field: string, message: string) =>
  new ApiErrors.Unprocessable({ reason, field, message })

/** Which of these observation (or package) ids exist, and which the caller may see. */
const checkVisible = (
  p: ApiSecurity.Principal,
  field: string,
  ids: ReadonlyArray<string>,
  table: "executed_obs_unit" | "raw_data_package"
) =>
  Effect.gen(function* () {
    if (ids.length === 0) return
    const sql = yield* SqlClient.SqlClient
    const column = table === "executed_obs_unit" ? sql`t.id` : sql`t.executed_obs_unit_id`
    const rows = yield* sql<{ id: string; visible: boolean }>`
      select t.id, (${Access.observationScope(sql, p, column)}) as visible from ${sql(table)} t where t.id in ${sql.in(ids)}`.pipe(
      Effect.orDie
    )
    const found = new Map(rows.map((r) => [r.id, r.visible]))
    for (const [i, id] of ids.entries()) {
      const visible = found.get(id)
      if (visible === undefined) {
        return yield* unprocessable(
          "UnknownReference",
          `${field}[${i}]`,
          `there is no ${table === "executed_obs_unit" ? "observation" : "package"} ${id}`
        )
      }
      if (!visible) {
        return yield* new ApiErrors.Forbidden({
          reason: "Program",
          message: `${field}[${i}]: ${id} belongs to an observing program the account ${p.name} may not access`
        })
      }
    }
  })

/** A position in a request's staged files: the last key given out and its copy's id. */
const FilesCursor = Schema.Tuple(Schema.String, Schema.UUID)

const decodeFilesCursor = (cursor: string) =>
  Effect.try(() => JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown).pipe(
    Effect.flatMap(Schema.decodeUnknown(FilesCursor)),
    Effect.mapError(() => unprocessable("Invalid", "cursor", "the cursor is not one this server gave out; start again without it"))
  )

/**
 * Where a location's files are on its host, by the rule of the drivers the server runs with
 * (`Storages.rootOf`): only a driver whose objects are plain files at their keys has one. Without
 * a registry in the context (the API alone), a disk location's root.
 */
const localRoot = (technology: string, driverConfig: unknown) =>
  Effect.map(Effect.serviceOption(StorageDriverRegistry.StorageDriverRegistry), (registry) => {
    if (Option.isSome(registry)) return StorageDriverRegistry.localRoot(registry.value, technology, driverConfig)
    const root = (driverConfig as { readonly root?: unknown } | null)?.root
    return technology === "disk" && typeof root === "string" ? root : undefined
  })

/**
 * One page of the files a request staged: the STAGED copies at its PROCESSING location of the
 * files its items cover, in key order (a keyset cursor, so a page is stable while cleanup runs).
 */
const stagedFiles = (p: ApiSecurity.Principal, id: string, limit: number, cursor: string | undefined) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const mine = Access.seesEverything(p) ? sql`true` : sql`r.account_id = ${p.accountId}`
    const [request] = yield* sql<{
      status: string
      expiresAt: Date | null
      releasedAt: Date | null
      errorMessage: string | null
      locationId: string
      location: string
      technology: string
      driverConfig: unknown
    }>`
      select r.status::text as status, r.expires_at, r.released_at, r.error_message, l.id as location_id, l.name as location,
             l.technology::text as technology, l.driver_config
      from staging_request r join data_location l on l.id = r.data_location_id
      where r.id = ${id} and ${mine}`.pipe(Effect.orDie)
    if (request === undefined) return yield* Access.notFound("StagingRequest", id)
    const after = cursor === undefined ? undefined : yield* decodeFilesCursor(cursor)
    const rows = request.status !== "completed" || request.releasedAt !== null ? [] : yield* sql<{
      copyId: string
      rawDataFileId: string
      executedObsUnitId: string
      relativePath: string
      key: string
      sizeBytes: string | number
      checksum: string
      folder: string | null
    }>`
      select c.id as copy_id, f.id as raw_data_file_id, f.executed_obs_unit_id, f.relative_path, c.path as key, c.size_bytes, c.checksum,
        (select r.staged_folders ->> o.observing_program_id::text
         from staging_request r, executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
         where r.id = ${id} and e.id = f.executed_obs_unit_id) as folder
      from physical_copy c join raw_data_file f on f.id = c.raw_data_file_id
      where c.data_location_id = ${request.locationId} and c.status = 'STAGED'
        and exists (
          select 1 from staging_request_item i
          where i.staging_request_id = ${id}
            and (i.raw_data_package_id = f.raw_data_package_id
              or (i.raw_data_package_id is null and i.executed_obs_unit_id = f.executed_obs_unit_id and f.data_product_id is null)))
        and ${after === undefined ? sql`true` : sql`(c.path, c.id) > (${after[0]}, ${after[1]}::uuid)`}
      order by c.path, c.id
      limit ${limit + 1}`.pipe(Effect.orDie)
    const more = rows.length > limit
    const kept = more ? rows.slice(0, limit) : rows
    const root = yield* localRoot(request.technology, request.driverConfig)
    const items = kept.map((r) => ({
      rawDataFileId: r.rawDataFileId,
      executedObsUnitId: r.executedObsUnitId,
      relativePath: r.relativePath,
      key: r.key,
      localPath: root === undefined
        ? null
        : r.folder === null
        ? path.join(root, r.key)
        : path.join(root, r.folder, r.executedObsUnitId, r.relativePath),
      sizeBytes: Number(r.sizeBytes),
      checksum: r.checksum
    }))
    const last = kept[kept.length - 1]
    const answer = {
      items,
      nextCursor: more && last !== undefined ? Buffer.from(JSON.stringify([last.key, last.copyId])).toString("base64url") : null,
      requestId: id,
      status: request.status,
      location: request.location,
      expiresAt: request.expiresAt === null ? null : request.expiresAt.toISOString(),
      releasedAt: request.releasedAt === null ? null : request.releasedAt.toISOString(),
      errorMessage: request.errorMessage
    }
    return yield* Schema.decodeUnknown(StagingApiModule.StagedFilesPage)(answer).pipe(Effect.orDie)
  })

/**
 * Releases a request: sets `released_at` with its event, in one transaction with the row locked.
 * A released request answers as it is (idempotent); one still being served is refused, since the
 * worker would stage its files after the release.
 */
const release = (p: ApiSecurity.Principal, id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const mine = Access.seesEverything(p) ? sql`true` : sql`account_id = ${p.accountId}`
    const rows = yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string; releasedAt: Date | null }>`
          select status::text as status, released_at from staging_request where id = ${id} and ${mine} for update`
        if (row === undefined) return yield* Access.notFound("StagingRequest", id)
        if (row.releasedAt === null) {
          if (row.status !== "completed" && row.status !== "failed") {
            return yield* new ApiErrors.Conflict({
              reason: "StateConflict",
              entity: "StagingRequest",
              id,
              fields: ["status"],
              message:
                `staging request ${id} is ${row.status}: it can be released once it is completed (or has failed); wait for it with \`ccat staging wait ${id}\``
            })
          }
          yield* sql`update staging_request set released_at = now(), updated_at = now() where id = ${id}`
          yield* EventLog.append({
            kind: "StagingRequest",
            id,
            from: row.status,
            to: row.status,
            actor: p.name,
            details: { action: "released" }
          })
        }
        return yield* sql`select * from staging_request where id = ${id}`
      })
    ).pipe(Effect.catchTag("SqlError", Effect.die))
    return (yield* withItems(rows))[0]
  })

/** The staging group's handlers. */
export const StagingHttpLive = HttpApiBuilder.group(Api.Api, "staging", (handlers) =>
  handlers
    .handle("create", ({ payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const observationIds = [...new Set(payload.observationIds ?? [])]
        const packageIds = [...new Set(payload.packageIds ?? [])]
        if (observationIds.length + packageIds.length === 0) {
          return yield* unprocessable("Invalid", "observationIds", "name at least one observation or package to stage")
        }
        const locations = yield* sql<{ id: string; type: string }>`select id, type from data_location where name = ${payload.location}`
          .pipe(Effect.orDie)
        if (locations.length === 0) {
          return yield* unprocessable("UnknownReference", "location", `there is no data location named ${payload.location}`)
        }
        if (locations[0].type !== "PROCESSING") {
          return yield* unprocessable(
            "WrongLocationType",
            "location",
            `${payload.location} is a ${locations[0].type} location; data is staged at a PROCESSING location`
          )
        }
        const expiresAt = payload.expiresAt ?? new Date(Date.now() + defaultExpiryDays * 86_400_000)
        if (expiresAt.getTime() <= Date.now()) return yield* unprocessable("OutOfRange", "expiresAt", "the expiry must be in the future")
        yield* checkVisible(p, "observationIds", observationIds, "executed_obs_unit")
        yield* checkVisible(p, "packageIds", packageIds, "raw_data_package")
        const rows = yield* sql.withTransaction(
          Effect.gen(function* () {
            const created = yield* sql<{ id: string; status: string }>`
              insert into staging_request ${sql.insert({ accountId: p.accountId, dataLocationId: locations[0].id, expiresAt })} returning *`
            const id = created[0].id
            yield* sql`insert into staging_request_item ${
              sql.insert([
                ...observationIds.map((o) => ({ stagingRequestId: id, executedObsUnitId: o, rawDataPackageId: null })),
                ...packageIds.map((k) => ({ stagingRequestId: id, executedObsUnitId: null, rawDataPackageId: k }))
              ])
            }`
            yield* EventLog.append({ kind: "StagingRequest", id, from: null, to: created[0].status, actor: p.name })
            return created
          })
        ).pipe(Effect.orDie)
        return (yield* withItems(rows))[0]
      }))
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (!Access.seesEverything(p)) where.push(sql`t.account_id = ${p.accountId}`)
        if (q.status !== undefined) {
          where.push(sql`t.status = ${q.status}`)
        }
        return yield* page({ table: "staging_request", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode: withItems })
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const mine = Access.seesEverything(p) ? sql`true` : sql`account_id = ${p.accountId}`
        const rows = yield* sql`select * from staging_request where id = ${path.id} and ${mine}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("StagingRequest", path.id)
        return (yield* withItems(rows))[0]
      }))
    .handle(
      "files",
      ({ path: p, urlParams: q }) =>
        Effect.flatMap(ApiSecurity.CurrentAccount, (account) => stagedFiles(account, p.id, q.limit ?? ApiPage.defaultLimit, q.cursor))
    )
    .handle("release", ({ path: p }) => Effect.flatMap(ApiSecurity.CurrentAccount, (account) => release(account, p.id))))
