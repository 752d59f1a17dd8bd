/**
 * The DataProduct list: products in filing order by keyset, within what the caller may see (the
 * rule of a single product's read), narrowed by program, pipeline, calib_level, the observation
 * they derive from, and their journey. Each filter is an index of migrations 0024 and 0026 or a
 * check of a page-order row; no filter counts the catalog. A product's journey is derived from
 * its files and packages (as `ProductFiling.read` derives it), by their product indexes.
 */
import { type ApiSecurity, type DataProductsApi, ObsCore } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as ObsCorePublisher from "../ObsCorePublisher.js"
import * as Access from "./Access.js"
import { page } from "./Paging.js"

/** The condition that a product (aliased `alias`) is one the caller may see: its program's, for a scientist. */
export const productScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal, alias: string): Fragment =>
  Access.seesEverything(p)
    ? sql`true`
    : p.role === "scientist" && p.programIds.length > 0
    ? sql`${sql(alias)}.observing_program_id in ${sql.in(p.programIds)}`
    : sql`false`

/** A product's journey in SQL, the same rules as `ProductFiling`'s: FAILED, then ARCHIVED, then TRANSFERRING, else WAITING. */
const journey = (sql: SqlClient.SqlClient, alias: string): Fragment => {
  const id = sql`${sql(alias)}.id`
  return sql`(case
    when exists (select 1 from raw_data_file f where f.data_product_id = ${id} and f.state in ('corrupt', 'missing'))
      or exists (select 1 from raw_data_package r where r.data_product_id = ${id} and r.status = 'failed') then 'FAILED'
    when exists (select 1 from raw_data_package r where r.data_product_id = ${id})
      and not exists (select 1 from raw_data_package r where r.data_product_id = ${id} and r.status <> 'completed')
      and not exists (select 1 from raw_data_file f where f.data_product_id = ${id} and f.raw_data_package_id is null) then 'ARCHIVED'
    when exists (select 1 from raw_data_package r where r.data_product_id = ${id} and r.status = 'in_progress') then 'TRANSFERRING'
    else 'WAITING' end)`
}

/** A product's stored fields as the list and the single read select them. */
export interface StoredProduct {
  readonly id: string
  readonly name: string
  readonly pipeline: string
  readonly pipelineVersion: string
  readonly calibLevel: number
  readonly dataproductType: string
  readonly observingProgramId: string
  readonly location: string
  readonly filedBy: string
  readonly createdAt: Date
}

interface SummaryRow extends StoredProduct {
  readonly journey: DataProductsApi.DataProductSummary["journey"]
}

/** A stored product as the API summarises it, given its journey and the ObsCore publisher's authority. */
export const summaryOf = (
  r: StoredProduct,
  journey: DataProductsApi.DataProductSummary["journey"],
  authority: string
): DataProductsApi.DataProductSummary => ({
  id: r.id as DataProductsApi.DataProductSummary["id"],
  name: r.name,
  pipeline: r.pipeline,
  pipelineVersion: r.pipelineVersion,
  calibLevel: r.calibLevel as 2 | 3,
  dataproductType: r.dataproductType as DataProductsApi.DataProductSummary["dataproductType"],
  programId: r.observingProgramId as DataProductsApi.DataProductSummary["programId"],
  location: r.location,
  filedBy: r.filedBy,
  createdAt: DateTime.unsafeFromDate(r.createdAt),
  journey,
  publisherDid: ObsCore.productDid(authority, r.id)
})

/** The page's products with their location, filer and journey, in the page's order. */
const summaries = (rows: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const ids = (rows as ReadonlyArray<{ readonly id: string }>).map((r) => r.id)
    if (ids.length === 0) return []
    const sql = yield* SqlClient.SqlClient
    const found = yield* sql<SummaryRow>`
      select d.id, d.name, d.pipeline, d.pipeline_version, d.calib_level, d.dataproduct_type, d.observing_program_id,
             l.name as location, a.name as filed_by, d.created_at, ${journey(sql, "d")} as journey
      from data_product d join data_location l on l.id = d.processing_location_id join account a on a.id = d.account_id
      where d.id in ${sql.in(ids)}`
    const publisher = yield* ObsCorePublisher.read
    const byId = new Map(found.map((r) => [r.id, r]))
    return ids.flatMap((id) => {
      const r = byId.get(id)
      if (r === undefined) return []
      return [summaryOf(r, r.journey, publisher.authority)]
    })
  }).pipe(Effect.orDie)

/** One page of the products the caller may see, filtered. */
export const list = Effect.fn("ProductList.list")(function* (p: ApiSecurity.Principal, q: typeof DataProductsApi.DataProductFilter.Type) {
  const sql = yield* SqlClient.SqlClient
  const where: Array<Fragment> = [productScope(sql, p, "t")]
  if (q.programId !== undefined) where.push(sql`t.observing_program_id = ${q.programId.toLowerCase()}`)
  if (q.pipeline !== undefined) where.push(sql`t.pipeline = ${q.pipeline}`)
  if (q.calibLevel !== undefined) where.push(sql`t.calib_level = ${q.calibLevel}`)
  if (q.observationId !== undefined) {
    where.push(
      sql`t.id in (select o.data_product_id from data_product_observation o where o.executed_obs_unit_id = ${q.observationId.toLowerCase()})`
    )
  }
  if (q.journey !== undefined) where.push(sql`${journey(sql, "t")} = ${q.journey}`)
  if (q.archived !== undefined) {
    where.push(q.archived === "true" ? sql`${journey(sql, "t")} = 'ARCHIVED'` : sql`${journey(sql, "t")} <> 'ARCHIVED'`)
  }
  return yield* page({ table: "data_product", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode: summaries })
})
