/**
 * DataLink for processed products: the links of a product's dataset
 * (`<authority>?product/<id>`) and the `#derivation` links an observation's dataset gains.
 * - `#this`: each of the product's files, read straight from an archive copy like a raw file;
 * - `#package`: the tar of each of the product's RawDataPackages, and `#documentation`: its
 *   record in the API (`PackageLinks`);
 * - `#progenitor`: each input, as filed (an observation's data of each module, the module's data
 *   a package belongs to, or another product), as a link to that dataset's own DataLink;
 * - `#derivation` (from an observation): every product made from it, directly or through other
 *   products, that the caller may read.
 * A product is readable as the observation it is kept under (the last of its inputs to end):
 * public once that is public, else by the account's grants, as ObsCore's row says.
 */
import { ObsCore } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Access from "../http/Access.js"
import * as DataLinkVotable from "./DataLinkVotable.js"
import type { Link } from "./DataLinkVotable.js"
import * as PackageLinks from "./PackageLinks.js"
import * as ScienceAccess from "./ScienceAccess.js"

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The product an ID names under this publisher (`<authority>?product/<id>`), if it names one. */
export const productOf = (id: string, authority: string): string | undefined => {
  const prefix = `${authority}?product/`
  const rest = id.startsWith(prefix) ? id.slice(prefix.length) : ""
  return uuid.test(rest) ? rest.toLowerCase() : undefined
}

const datalink = (publisher: ObsCore.Publisher, did: string) => ObsCore.datalinkUrl(publisher.baseUrl, did)

/** The links of one product's dataset, or one row with the error when the caller may not read it. */
export const productLinks = (who: ScienceAccess.Caller, publisher: ObsCore.Publisher, id: string, productId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [product] = yield* sql<{ name: string; pipeline: string; pipelineVersion: string; calibLevel: number; observationId: string }>`
      select d.name, d.pipeline, d.pipeline_version, d.calib_level, d.executed_obs_unit_id as observation_id from data_product d
      where d.id = ${productId} and ${ScienceAccess.observationReadable(sql, who, sql`d.executed_obs_unit_id`)}`
    if (product === undefined) return [DataLinkVotable.notFound(id)]
    const scoped = who.kind === "account" && (yield* Access.canSeeObservation(who.principal, product.observationId))
    const [files, packages, inputs] = yield* Effect.all([
      sql<{ id: string; relativePath: string; sizeBytes: string; packageId: string | null }>`
        select id, relative_path, size_bytes, raw_data_package_id as package_id from raw_data_file
        where data_product_id = ${productId} and state in ('filed', 'packaged') order by relative_path`,
      sql<PackageLinks.PackageRow>`
        select id, relative_path, size_bytes, checksum, status::text as status from raw_data_package where data_product_id = ${productId} order by relative_path`,
      sql<
        {
          position: number
          observationId: string | null
          packageId: string | null
          inputProductId: string | null
          moduleId: string | null
          moduleName: string | null
        }
      >`
        select i.position, coalesce(i.executed_obs_unit_id, r.executed_obs_unit_id) as observation_id, i.raw_data_package_id as package_id,
               i.input_product_id, m.id as module_id, m.name as module_name
        from data_product_input i
        left join raw_data_package r on r.id = i.raw_data_package_id
        left join lateral (
          select m.id, m.name from instrument_module m
          where (r.id is not null and m.id = r.instrument_module_id)
             or (i.executed_obs_unit_id is not null and m.id in (
                  select p.instrument_module_id from raw_data_package p where p.executed_obs_unit_id = i.executed_obs_unit_id and p.data_product_id is null))
        ) m on i.input_product_id is null
        where i.data_product_id = ${productId}
        order by i.position, m.name`
    ], { concurrency: 1 })
    const what = `${product.pipeline} ${product.pipelineVersion}, calib_level ${product.calibLevel}`
    const rows: Array<Link> = files.map((f) => ({
      id,
      semantics: "#this",
      ...(f.packageId !== null
        ? { accessUrl: `${publisher.baseUrl}/api/v1/files/${f.id}/content` }
        : { errorMessage: `NotFoundFault: ${f.relativePath} is not in a package yet; it can be read once it is archived` }),
      description:
        `file ${f.relativePath} of product ${product.name} (${what}), read from the archive and checked against its filed checksum`,
      contentType: "application/octet-stream",
      contentLength: Number(f.sizeBytes),
      localSemantics: "product-file",
      linkAuth: scoped ? "true" : "optional",
      linkAuthorized: true
    }))
    for (const p of packages) {
      const named = `RawDataPackage ${p.relativePath} of product ${product.name}`
      rows.push(...PackageLinks.links(id, publisher.baseUrl, p, { named, localSemantics: "product-package", isPublic: !scoped, scoped }))
    }
    for (const input of inputs) {
      const did = input.inputProductId !== null
        ? ObsCore.productDid(publisher.authority, input.inputProductId)
        : input.moduleId === null
        ? undefined
        : ObsCore.publisherDid(publisher.authority, input.observationId!, input.moduleId)
      const named = input.inputProductId !== null
        ? `data product ${input.inputProductId}`
        : input.packageId !== null
        ? `RawDataPackage ${input.packageId} (observation ${input.observationId}, module ${input.moduleName})`
        : `observation ${input.observationId}${input.moduleName === null ? "" : `, module ${input.moduleName}`}`
      rows.push({
        id,
        semantics: "#progenitor",
        ...(did === undefined
          ? { errorMessage: `NotFoundFault: observation ${input.observationId} has no raw data package to link to` }
          : { accessUrl: datalink(publisher, did) }),
        description: `input ${input.position} of ${product.name}: ${named}`,
        contentType: "application/x-votable+xml;content=datalink",
        localSemantics: input.inputProductId !== null ? "input-product" : input.packageId !== null ? "input-package" : "input-observation"
      })
    }
    return rows
  }).pipe(Effect.orDie)

/** The `#derivation` links of an observation's dataset: the products made from it that the caller may read. */
export const derivationLinks = (who: ScienceAccess.Caller, publisher: ObsCore.Publisher, id: string, observationId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const products = yield* sql<{ id: string; name: string; pipeline: string; pipelineVersion: string; calibLevel: number }>`
      select d.id, d.name, d.pipeline, d.pipeline_version, d.calib_level
      from data_product_observation po join data_product d on d.id = po.data_product_id
      where po.executed_obs_unit_id = ${observationId} and ${ScienceAccess.observationReadable(sql, who, sql`d.executed_obs_unit_id`)}
      order by d.created_at, d.id`
    return products.map((d): Link => ({
      id,
      semantics: "#derivation",
      accessUrl: datalink(publisher, ObsCore.productDid(publisher.authority, d.id)),
      description: `data product ${d.name}: ${d.pipeline} ${d.pipelineVersion}, calib_level ${d.calibLevel}`,
      contentType: "application/x-votable+xml;content=datalink",
      localSemantics: "derived-product"
    }))
  }).pipe(Effect.orDie)
