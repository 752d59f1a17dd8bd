/** The transfers group: bundles with their members, and transfer attempts. Operators only. */
import { Api, RawData } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decodeBundles = decoder(RawData.DataTransferPackage)
const decodeAttempts = decoder(RawData.DataTransfer)

/** Bundles with the ids of their member packages. */
const withMembers = (rows: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const bundles = yield* decodeBundles(rows)
    if (bundles.length === 0) return []
    const sql = yield* SqlClient.SqlClient
    const members = yield* sql<{ dataTransferPackageId: string; rawDataPackageId: string }>`
      select data_transfer_package_id, raw_data_package_id from data_transfer_package_member
      where data_transfer_package_id in ${sql.in(bundles.map((b) => b.id))} order by raw_data_package_id`.pipe(Effect.orDie)
    return bundles.map((b) => ({
      ...b,
      packageIds: members.filter((m) => m.dataTransferPackageId === b.id).map((m) => m.rawDataPackageId as RawData.RawDataPackage["id"])
    }))
  })

/** The transfers group's handlers. */
export const TransfersHttpLive = HttpApiBuilder.group(Api.Api, "transfers", (handlers) =>
  handlers
    .handle("listBundles", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        if (q.packageId !== undefined) {
          where.push(
            sql`t.id in (select data_transfer_package_id from data_transfer_package_member where raw_data_package_id = ${q.packageId})`
          )
        }
        return yield* page({
          table: "data_transfer_package",
          orderBy: "created_at",
          where,
          limit: q.limit,
          cursor: q.cursor,
          decode: withMembers
        })
      }))
    .handle("getBundle", ({ path }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select * from data_transfer_package where id = ${path.id}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("DataTransferPackage", path.id)
        return (yield* withMembers(rows))[0]
      }))
    .handle("listAttempts", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (q.bundleId !== undefined) where.push(sql`t.data_transfer_package_id = ${q.bundleId}`)
        if (q.packageId !== undefined) where.push(sql`t.raw_data_package_id = ${q.packageId}`)
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        return yield* page({
          table: "data_transfer",
          orderBy: "created_at",
          where,
          // from the location or to it, each end by its own index
          anyOf: q.locationId === undefined
            ? undefined
            : [sql`t.from_location_id = ${q.locationId}`, sql`t.to_location_id = ${q.locationId}`],
          limit: q.limit,
          cursor: q.cursor,
          decode: decodeAttempts
        })
      }))
    .handle("getAttempt", ({ path }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select * from data_transfer where id = ${path.id}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("DataTransfer", path.id)
        return (yield* decodeAttempts(rows))[0]
      })))
