/**
 * A product's provenance checked against the ops-db: each input (an observation, a package or
 * another product) exists, the caller may see it, an observation has ended; together they are
 * of one observing program (the product's, whose access rules it follows). From them come every
 * observation the product derives from and its *anchor*: the observation that ended last, with a
 * module of it, under which the lifecycle keeps the product's files and packages. Anchoring to
 * the latest observation gives the product the access rules of the last of its inputs to become
 * public.
 */
import { ApiErrors, type ApiSecurity, type DataProductsApi } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { unprocessable } from "./FilingRules.js"

/** The inputs resolved: the product's program, every observation it derives from, its anchor. */
export interface Resolved {
  readonly programId: string
  readonly observationIds: ReadonlyArray<string>
  readonly anchor: { readonly observationId: string; readonly moduleId: string }
}

type Kind = "observation" | "package" | "product"

const kindOf = (input: DataProductsApi.ProductInput): { readonly kind: Kind; readonly id: string; readonly field: string } =>
  "observationId" in input
    ? { kind: "observation", id: input.observationId.toLowerCase(), field: "observationId" }
    : "packageId" in input
    ? { kind: "package", id: input.packageId.toLowerCase(), field: "packageId" }
    : { kind: "product", id: input.productId.toLowerCase(), field: "productId" }

interface Row {
  readonly id: string
  /** The observation the input is of (an observation's own id; a package's; a product's anchor). */
  readonly observationId: string
  readonly moduleId: string | null
  readonly programId: string
  readonly visible: boolean
  readonly ended: boolean
  /** The product a package input holds, whose provenance the new product inherits. */
  readonly productId?: string | null
}

const forbidden = (p: ApiSecurity.Principal, field: string, what: string, id: string) =>
  new ApiErrors.Forbidden({
    reason: "Program",
    message: `${field}: ${what} ${id} belongs to an observing program the account ${p.name} may not access`
  })

/** The caller's scope as a condition on a program id column. */
const programScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal, column: Fragment): Fragment =>
  Access.seesEverything(p)
    ? sql`true`
    : p.role === "scientist" && p.programIds.length > 0
    ? sql`${column} in ${sql.in(p.programIds)}`
    : sql`false`

/** Every input looked up, one statement per kind, keyed by kind and id. */
const lookUp = (p: ApiSecurity.Principal, ids: Record<Kind, ReadonlyArray<string>>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const scope = sql`(${Access.obsUnitScope(sql, p)})`
    const found = new Map<string, Row>()
    if (ids.observation.length > 0) {
      for (
        const r of yield* sql<Row>`
        select e.id, e.id as observation_id, null::uuid as module_id, o.observing_program_id as program_id, ${scope} as visible,
               (e.end_at is not null) as ended
        from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id where e.id in ${sql.in(ids.observation)}`
      ) found.set(`observation:${r.id}`, r)
    }
    if (ids.package.length > 0) {
      for (
        const r of yield* sql<Row>`
        select r.id, r.executed_obs_unit_id as observation_id, r.instrument_module_id as module_id, o.observing_program_id as program_id,
               ${scope} as visible, (e.end_at is not null) as ended, r.data_product_id as product_id
        from raw_data_package r join executed_obs_unit e on e.id = r.executed_obs_unit_id join obs_unit o on o.id = e.obs_unit_id
        where r.id in ${sql.in(ids.package)}`
      ) found.set(`package:${r.id}`, r)
    }
    if (ids.product.length > 0) {
      for (
        const r of yield* sql<Row>`
        select d.id, d.executed_obs_unit_id as observation_id, d.instrument_module_id as module_id, d.observing_program_id as program_id,
               ${programScope(sql, p, sql.literal("d.observing_program_id"))} as visible, true as ended
        from data_product d where d.id in ${sql.in(ids.product)}`
      ) found.set(`product:${r.id}`, r)
    }
    return found
  })

/** Checks the inputs and resolves them, or fails with the first one to fix, named by its field. */
export const resolve = (p: ApiSecurity.Principal, inputs: ReadonlyArray<DataProductsApi.ProductInput>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const parsed = inputs.map(kindOf)
    const seen = new Map<string, number>()
    for (const [i, input] of parsed.entries()) {
      const key = `${input.kind}:${input.id}`
      if (seen.has(key)) {
        return yield* unprocessable(
          "Invalid",
          `inputs[${i}].${input.field}`,
          `${input.kind} ${input.id} is named twice (also inputs[${seen.get(key)}])`
        )
      }
      seen.set(key, i)
    }
    const ids = (kind: Kind) => parsed.filter((x) => x.kind === kind).map((x) => x.id)
    const found = yield* lookUp(p, { observation: ids("observation"), package: ids("package"), product: ids("product") })
    const programs = new Map<string, number>()
    for (const [i, input] of parsed.entries()) {
      const field = `inputs[${i}].${input.field}`
      const row = found.get(`${input.kind}:${input.id}`)
      if (row === undefined) {
        return yield* unprocessable(
          "UnknownReference",
          field,
          `there is no ${input.kind === "product" ? "data product" : input.kind} ${input.id}`
        )
      }
      if (!row.visible) return yield* forbidden(p, field, input.kind, input.id)
      if (!row.ended) {
        return yield* unprocessable(
          "Invalid",
          field,
          `observation ${row.observationId} is still running; a product is made from observations that ended (close it first)`
        )
      }
      if (!programs.has(row.programId)) programs.set(row.programId, i)
    }
    if (programs.size > 1) {
      const [[a, i], [b, j]] = [...programs.entries()]
      return yield* unprocessable(
        "Invalid",
        `inputs[${j}]`,
        `the inputs span observing programs ${a} (inputs[${i}]) and ${b} (inputs[${j}]); a product belongs to one program, whose access rules it follows: file one product per program`
      )
    }
    const programId = [...programs.keys()][0]!
    const rows = parsed.map((x) => found.get(`${x.kind}:${x.id}`)!)
    // Every observation it derives from: its own inputs' and, through input products (or their packages), theirs.
    const productIds = [...ids("product"), ...rows.flatMap((r) => (r.productId == null ? [] : [r.productId]))]
    const inherited = productIds.length === 0 ? [] : (yield* sql<{ id: string }>`
      select distinct executed_obs_unit_id as id from data_product_observation where data_product_id in ${sql.in(productIds)}`).map((r) =>
      r.id
    )
    const observationIds = [...new Set([...rows.filter((_, i) => parsed[i]!.kind !== "product").map((r) => r.observationId), ...inherited])]
      .sort()
    const [latest] = yield* sql<{ id: string; instrumentId: string }>`
      select e.id, o.instrument_id from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
      where e.id in ${sql.in(observationIds)} order by e.end_at desc, e.id limit 1`
    // Its module: an input's of that observation, else the first of its raw packages', else its instrument's first.
    const given = rows.find((r) => r.observationId === latest!.id && r.moduleId !== null)?.moduleId
    const [fallback] = given !== undefined && given !== null ? [{ id: given }] : yield* sql<{ id: string }>`
      select m.id from instrument_module m
      where m.instrument_id = ${latest!.instrumentId}
      order by not exists (select 1 from raw_data_package r where r.executed_obs_unit_id = ${
        latest!.id
      } and r.instrument_module_id = m.id), m.name
      limit 1`
    if (fallback === undefined) return yield* Effect.dieMessage(`the instrument of observation ${latest!.id} has no module`)
    return { programId, observationIds, anchor: { observationId: latest!.id, moduleId: fallback.id } } satisfies Resolved
  }).pipe(Effect.catchTag("SqlError", Effect.die))
