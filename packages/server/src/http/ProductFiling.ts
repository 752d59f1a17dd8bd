/**
 * Filing a DataProduct on the ops-db, all or nothing in one transaction: the PROCESSING location
 * and its site's BUFFER (where packaging writes the product's package), the file names the
 * packager can write, the provenance (`ProductInputs`), then the paths, which must be free at the
 * location and under the anchor observation. The product, its inputs, the observations it
 * derives from and its files (RawDataFiles at the PROCESSING location, with the product's id)
 * are inserted together, each file with its creation event; from there the lifecycle's stages
 * package, archive, audit, repair and clean it up as they do an instrument's files.
 *
 * The product's id is the pipeline's UUID: the same request again answers with what is stored,
 * other values under the id are a 409 naming the fields, and another product's name a 409 too.
 */
import { ApiErrors, type ApiSecurity, ConstraintError, type DataProductsApi, EventLog, Status } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as StagingLayout from "../lifecycle/StagingLayout.js"
import * as ObsCorePublisher from "../ObsCorePublisher.js"
import { conflict, requestFolders, unprocessable } from "./FilingRules.js"
import * as ProductInputs from "./ProductInputs.js"
import { productScope, type StoredProduct, summaryOf } from "./ProductList.js"

interface ProductRow extends StoredProduct {
  readonly parameters: Record<string, unknown>
}

interface InputRow {
  readonly executedObsUnitId: string | null
  readonly rawDataPackageId: string | null
  readonly inputProductId: string | null
}

/** JSON with sorted keys, so equal objects compare equal whatever their key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

const inputOf = (r: InputRow): DataProductsApi.ProductInput =>
  r.executedObsUnitId !== null
    ? { observationId: r.executedObsUnitId }
    : r.rawDataPackageId !== null
    ? { packageId: r.rawDataPackageId }
    : { productId: r.inputProductId! }

const inputKey = (i: DataProductsApi.ProductInput) =>
  "observationId" in i
    ? `o:${i.observationId.toLowerCase()}`
    : "packageId" in i
    ? `p:${i.packageId.toLowerCase()}`
    : `d:${i.productId.toLowerCase()}`

/** The journey of a product: FAILED when a file was found bad or a package failed, ARCHIVED when everything is. */
const journeyOf = (
  files: ReadonlyArray<{ readonly state: string; readonly packageId: string | null }>,
  packages: ReadonlyArray<{ readonly status: Status.Status }>
): Status.PackageJourney => {
  if (files.some((f) => f.state === "corrupt" || f.state === "missing") || packages.some((p) => p.status === "failed")) return "FAILED"
  if (files.every((f) => f.packageId !== null) && packages.length > 0 && packages.every((p) => p.status === "completed")) return "ARCHIVED"
  return packages.some((p) => p.status === "in_progress") ? "TRANSFERRING" : "WAITING"
}

/** A stored product as the API answers it, if it exists and the caller may see it. */
export const read = (p: ApiSecurity.Principal, id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const visible = productScope(sql, p, "d")
    const [row] = yield* sql<ProductRow>`
      select d.id, d.name, d.pipeline, d.pipeline_version, d.parameters, d.calib_level, d.dataproduct_type, d.observing_program_id,
             l.name as location, a.name as filed_by, d.created_at
      from data_product d join data_location l on l.id = d.processing_location_id join account a on a.id = d.account_id
      where d.id = ${id} and ${visible}`
    if (row === undefined) return undefined
    const [inputs, observations, files, packages, publisher] = yield* Effect.all([
      sql<
        InputRow
      >`select executed_obs_unit_id, raw_data_package_id, input_product_id from data_product_input where data_product_id = ${id} order by position`,
      sql<
        { id: string }
      >`select executed_obs_unit_id as id from data_product_observation where data_product_id = ${id} order by executed_obs_unit_id`,
      sql<{ id: string; relativePath: string; sizeBytes: string; checksum: string; state: string; packageId: string | null }>`
        select id, relative_path, size_bytes, checksum, state::text as state, raw_data_package_id as package_id
        from raw_data_file where data_product_id = ${id} order by relative_path`,
      sql<
        { id: string; status: Status.Status }
      >`select id, status::text as status from raw_data_package where data_product_id = ${id} order by created_at, id`,
      ObsCorePublisher.read
    ], { concurrency: 1 })
    return {
      ...summaryOf(row, journeyOf(files, packages), publisher.authority),
      parameters: row.parameters,
      inputs: inputs.map(inputOf),
      observationIds: observations.map((o) => o.id) as unknown as DataProductsApi.DataProduct["observationIds"],
      files: files.map((f) => ({ ...f, sizeBytes: Number(f.sizeBytes) })) as unknown as DataProductsApi.DataProduct["files"],
      packages: packages.map((k) => ({
        id: k.id,
        status: k.status,
        journey: Status.journey(k.status)
      })) as unknown as DataProductsApi.DataProduct["packages"]
    } satisfies DataProductsApi.DataProduct
  }).pipe(Effect.catchTag("SqlError", Effect.die))

/** The fields in which a re-filed product differs from the stored one. */
const differences = (s: DataProductsApi.DataProduct, req: DataProductsApi.FileDataProduct): Array<string> => {
  const files = (
    list: ReadonlyArray<{ readonly id: string; readonly relativePath: string; readonly sizeBytes: number; readonly checksum: string }>
  ) => list.map((f) => `${f.id.toLowerCase()} ${f.relativePath} ${f.sizeBytes} ${f.checksum}`).sort().join("\n")
  return [
    s.name !== req.name ? "name" : undefined,
    s.pipeline !== req.pipeline ? "pipeline" : undefined,
    s.pipelineVersion !== req.pipelineVersion ? "pipelineVersion" : undefined,
    canonical(s.parameters) !== canonical(req.parameters ?? {}) ? "parameters" : undefined,
    s.calibLevel !== req.calibLevel ? "calibLevel" : undefined,
    s.dataproductType !== req.dataproductType ? "dataproductType" : undefined,
    s.location !== req.location ? "location" : undefined,
    s.inputs.map(inputKey).join(",") !== req.inputs.map(inputKey).join(",") ? "inputs" : undefined,
    files(s.files) !== files(req.files) ? "files" : undefined
  ].filter((x): x is string => x !== undefined)
}

/** The PROCESSING location by name, at a site with a BUFFER for the product's package. */
const processingLocation = (name: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [location] = yield* sql<{ id: string; type: string; site: string; buffers: number }>`
      select l.id, l.type::text as type, s.name as site,
             (select count(*)::int from data_location b where b.site_id = l.site_id and b.type = 'BUFFER') as buffers
      from data_location l join site s on s.id = l.site_id where l.name = ${name}`
    if (location === undefined) return yield* unprocessable("UnknownReference", "location", `there is no data location named ${name}`)
    if (location.type !== "PROCESSING") {
      return yield* unprocessable(
        "WrongLocationType",
        "location",
        `${name} is a ${location.type} location; products are filed where a pipeline wrote them, at a PROCESSING location`
      )
    }
    if (location.buffers === 0) {
      return yield* unprocessable(
        "WrongLocationType",
        "location",
        `${name} is at site ${location.site}, which has no BUFFER location to package products in`
      )
    }
    return location
  })

/**
 * Refuses ids and paths another file or copy holds, and paths where staging removes what is
 * there (its store, a live request's folder), naming the file to fix.
 */
const refuseTaken = (req: DataProductsApi.FileDataProduct, locationId: string, anchor: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const ids = req.files.map((f) => f.id.toLowerCase())
    const paths = req.files.map((f) => f.relativePath)
    const index = (path: string) => paths.indexOf(path)
    const [byId] = yield* sql<{ id: string; dataProductId: string | null }>`
      select id, data_product_id from raw_data_file where id in ${sql.in(ids)} limit 1`
    if (byId !== undefined) {
      const i = ids.indexOf(byId.id)
      return yield* conflict(
        "DifferentContent",
        "RawDataFile",
        byId.id,
        ["id"],
        `files[${i}]: file id ${byId.id} was already filed ${
          byId.dataProductId === null ? "as raw data" : `for product ${byId.dataProductId}`
        }; give each file of a product a new UUID`
      )
    }
    const [held] = yield* sql<{ relativePath: string; holder: string }>`
      select relative_path, id::text as holder from raw_data_file
      where source_location_id = ${locationId} and source_released_at is null and relative_path in ${sql.in(paths)}
      union all
      select path, coalesce(raw_data_file_id, raw_data_package_id, data_transfer_package_id)::text from physical_copy
      where data_location_id = ${locationId} and status <> 'DELETED' and path in ${sql.in(paths)}
      limit 1`
    if (held !== undefined) {
      const i = index(held.relativePath)
      return yield* conflict(
        "PathHeld",
        "RawDataFile",
        req.files[i]!.id,
        ["relativePath"],
        `files[${i}]: ${held.relativePath} at ${req.location} is held by ${held.holder} (a filed file or a copy there, staged data included); write the product under a folder of its own`
      )
    }
    // staged data's store and a request's folders are removed under the pipeline's feet
    const store = paths.findIndex((p) => p === StagingLayout.storeFolder || p.startsWith(`${StagingLayout.storeFolder}/`))
    if (store !== -1) {
      return yield* unprocessable(
        "Invalid",
        `files[${store}].relativePath`,
        `${
          paths[store]
        } is inside ${StagingLayout.storeFolder}, the store of staged data only the service writes; write the product under a folder of its own`
      )
    }
    const [inside] = yield* sql<{ relativePath: string; requestId: string; folder: string }>`
      select p.path as relative_path, r.id as request_id, f.folder
      from staging_request r cross join lateral jsonb_each_text(r.staged_folders) as f(program, folder)
      join unnest(${paths}::text[]) as p(path) on left(p.path, length(f.folder) + 1) = f.folder || '/'
      where r.data_location_id = ${locationId} and r.staged_folders is not null and r.folders_removed_at is null
      limit 1`
    if (inside !== undefined) {
      const i = index(inside.relativePath)
      return yield* unprocessable(
        "Invalid",
        `files[${i}].relativePath`,
        `${inside.relativePath} is inside ${inside.folder}, the folder of staging request ${inside.requestId}, which is removed when the request is released or expires; write the product under a folder of its own`
      )
    }
    const [same] = yield* sql<{ relativePath: string }>`
      select relative_path from raw_data_file where executed_obs_unit_id = ${anchor} and relative_path in ${sql.in(paths)} limit 1`
    if (same !== undefined) {
      const i = index(same.relativePath)
      return yield* conflict(
        "DuplicatePath",
        "RawDataFile",
        req.files[i]!.id,
        ["relativePath"],
        `files[${i}]: observation ${anchor}, under which the product is kept, already has a file ${same.relativePath} (raw data or an earlier product); write the product under a folder of its own`
      )
    }
  }).pipe(Effect.catchTag("SqlError", Effect.die))

/** Files a product, or answers with what is stored when it is a repeat. */
export const file = Effect.fn("ProductFiling.file")(function* (p: ApiSecurity.Principal, req: DataProductsApi.FileDataProduct) {
  const sql = yield* SqlClient.SqlClient
  const id = req.id.toLowerCase()
  return yield* sql.withTransaction(Effect.gen(function* () {
    // one filing of an id at a time: a concurrent repeat waits and then finds it stored
    yield* sql`select pg_advisory_xact_lock(hashtext(${`data_product:${id}`}))`
    const [exists] = yield* sql<{ id: string }>`select id from data_product where id = ${id}`
    if (exists !== undefined) {
      const stored = yield* read(p, id)
      if (stored === undefined) {
        return yield* conflict("AlreadyExists", "DataProduct", id, ["id"], `product id ${id} is taken; file this product under a new UUID`)
      }
      const fields = differences(stored, req)
      if (fields.length > 0) {
        return yield* conflict(
          "DifferentContent",
          "DataProduct",
          id,
          fields,
          `product ${id} was already filed with a different ${fields.join(", ")}; a filed product cannot change (file a new id)`
        )
      }
      return stored
    }
    const [named] = yield* sql<{ id: string }>`select id from data_product where lower(name) = lower(${req.name})`
    if (named !== undefined) {
      return yield* conflict(
        "AlreadyExists",
        "DataProduct",
        named.id,
        ["name"],
        `the name ${
          JSON.stringify(req.name)
        } is taken by product ${named.id}; name this one differently (a version or date in the name helps)`
      )
    }
    const location = yield* processingLocation(req.location)
    const ids = new Map<string, number>()
    for (const [i, f] of req.files.entries()) {
      const key = f.id.toLowerCase()
      if (ids.has(key)) {
        return yield* unprocessable(
          "Invalid",
          `files[${i}].id`,
          `file id ${f.id} appears twice in the request (also files[${ids.get(key)}])`
        )
      }
      ids.set(key, i)
    }
    // also refuses a path named twice, the manifest's name, and a path that is another's folder
    const paths = new Set<string>()
    for (const [i, f] of req.files.entries()) {
      if (paths.has(f.relativePath)) {
        return yield* unprocessable("Invalid", `files[${i}].relativePath`, `${f.relativePath} appears twice in the request`)
      }
      paths.add(f.relativePath)
    }
    yield* requestFolders(req.files.map((f) => f.relativePath))
    const resolved = yield* ProductInputs.resolve(p, req.inputs)
    yield* refuseTaken(req, location.id, resolved.anchor.observationId)
    yield* sql`
      insert into data_product (id, name, pipeline, pipeline_version, parameters, calib_level, dataproduct_type, observing_program_id,
                                executed_obs_unit_id, instrument_module_id, processing_location_id, account_id)
      values (${id}, ${req.name}, ${req.pipeline}, ${req.pipelineVersion}, ${
        JSON.stringify(req.parameters ?? {})
      }::jsonb, ${req.calibLevel},
              ${req.dataproductType}, ${resolved.programId}, ${resolved.anchor.observationId}, ${resolved.anchor.moduleId}, ${location.id}, ${p.accountId})`
    const column = (
      i: DataProductsApi.ProductInput,
      k: "observationId" | "packageId" | "productId"
    ) => (k in i ? (i as Record<string, string>)[k]!.toLowerCase() : null)
    yield* sql`
      insert into data_product_input (data_product_id, position, executed_obs_unit_id, raw_data_package_id, input_product_id)
      select ${id}::uuid, t.n - 1, t.o, t.p, t.d
      from unnest(${req.inputs.map((i) => column(i, "observationId"))}::uuid[], ${req.inputs.map((i) => column(i, "packageId"))}::uuid[],
                  ${req.inputs.map((i) => column(i, "productId"))}::uuid[]) with ordinality as t(o, p, d, n)`
    yield* sql`
      insert into data_product_observation (data_product_id, executed_obs_unit_id)
      select ${id}::uuid, unnest(${resolved.observationIds}::uuid[])`
    yield* sql`
      with ins as (
        insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum,
                                   source_location_id, source_location_type, data_product_id)
        select t.id, ${resolved.anchor.observationId}::uuid, ${resolved.anchor.moduleId}::uuid, t.relative_path, t.size_bytes, t.checksum,
               ${location.id}::uuid, 'PROCESSING'::location_type, ${id}::uuid
        from unnest(${req.files.map((f) => f.id.toLowerCase())}::uuid[], ${req.files.map((f) => f.relativePath)}::text[],
                    ${req.files.map((f) => f.sizeBytes)}::int8[], ${
                      req.files.map((f) => f.checksum)
                    }::text[]) as t(id, relative_path, size_bytes, checksum)
        returning *
      ),
      events as (${
        EventLog.appendFrom(sql, {
          kind: "RawDataFile",
          rows: "ins",
          from: null,
          to: { column: "state" },
          actor: p.name,
          details: { action: "product filed", dataProductId: id }
        })
      })
      select count(*) from ins`
    const stored = yield* read(p, id)
    if (stored === undefined) return yield* Effect.dieMessage(`product ${id} was filed but cannot be read back`)
    return stored
  })).pipe(Effect.catchTag("SqlError", (e) => {
    // what the checks above found free was taken by a concurrent filing before this one committed
    const refused = ConstraintError.fromSqlError(e)
    return refused?.reason === "UniqueViolation"
      ? conflict(
        "AlreadyExists",
        "DataProduct",
        id,
        [],
        `a concurrent filing took this product's name, a file id or a path first (${
          refused.constraint ?? "a unique rule"
        }); nothing was stored: file again to see which`
      )
      : Effect.die(e)
  }))
})

/** A 404 for a product that does not exist or that the caller may not see. */
export const notFound = (id: string) =>
  new ApiErrors.NotFound({ entity: "DataProduct", id, message: `data product ${id} does not exist or is not visible to this account` })
