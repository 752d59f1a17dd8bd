/**
 * The links of a dataset (IVOA DataLink 1.1 `{links}`), for an observation's data of one
 * instrument module (its ObsCore `obs_publisher_did`, which ObsCore's `access_url` points here
 * with) or for one RawDataFile (its id):
 * - `#this`: each raw file's bytes, read straight from an archive copy (`FileContent`);
 * - `#package`: the tar of each RawDataPackage holding them, whole (`PackageContent`), and
 *   `#documentation`: its record in the API (`PackageLinks`);
 * - `#auxiliary`: staging the observation to a PROCESSING location (the whole packages, for
 *   pipelines), through the API.
 * - `#derivation`: the processed products made from the observation (`ProductLinks`), whose own
 *   ID (`<authority>?product/<id>`) lists their files and `#progenitor` inputs.
 * An ID the caller may not read, or that is not one of these, gets one row with its error, as
 * DataLink requires.
 */
import type { ObsCore } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Access from "../http/Access.js"
import * as DataLinkVotable from "./DataLinkVotable.js"
import type { Link } from "./DataLinkVotable.js"
import * as PackageLinks from "./PackageLinks.js"
import * as ProductLinks from "./ProductLinks.js"
import * as ScienceAccess from "./ScienceAccess.js"

/** The most IDs one request may ask about. */
export const maxIds = 100

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** What an ID names: one file, or an observation's data of one module. */
export type Target =
  | { readonly kind: "file"; readonly fileId: string }
  | { readonly kind: "observation"; readonly observationId: string; readonly moduleId: string }

/** What an ID names under this publisher, or why it names nothing. */
export const parseId = (id: string, authority: string): Target | string => {
  if (uuid.test(id)) return { kind: "file", fileId: id.toLowerCase() }
  const prefix = `${authority}?`
  if (id.startsWith(prefix)) {
    const [observationId, moduleId, ...rest] = id.slice(prefix.length).split("/")
    if (rest.length === 0 && uuid.test(observationId ?? "") && uuid.test(moduleId ?? "")) {
      return { kind: "observation", observationId: observationId!.toLowerCase(), moduleId: moduleId!.toLowerCase() }
    }
  }
  return `UsageFault: ${
    JSON.stringify(id)
  } is neither an obs_publisher_did of this archive (${authority}?<observation>/<module> or ${authority}?product/<product>) nor a RawDataFile id`
}

interface FileRow {
  readonly id: string
  readonly relativePath: string
  readonly sizeBytes: string
  readonly packageId: string | null
  readonly public: boolean
}

/** Whether the caller's account (not the public rule) covers the observation: the API's packages and staging are behind it. */
const inScope = (who: ScienceAccess.Caller, observationId: string) =>
  who.kind === "anonymous" ? Effect.succeed(false) : Access.canSeeObservation(who.principal, observationId)

const canStage = (who: ScienceAccess.Caller, scoped: boolean) =>
  who.kind === "account" && scoped && (who.principal.role === "scientist" || who.principal.role === "admin")

/** The links of one ID, as rows of the response. */
export const linksOf = (who: ScienceAccess.Caller, publisher: ObsCore.Publisher, id: string) =>
  Effect.gen(function* () {
    const productId = ProductLinks.productOf(id, publisher.authority)
    if (productId !== undefined) return yield* ProductLinks.productLinks(who, publisher, id, productId)
    const target = parseId(id, publisher.authority)
    if (typeof target === "string") return [{ id, semantics: "#this", errorMessage: target }] satisfies Array<Link>
    const sql = yield* SqlClient.SqlClient
    const base = publisher.baseUrl
    const readable = ScienceAccess.observationReadable(sql, who, sql`f.executed_obs_unit_id`)
    const publicNow = sql`exists (
      select 1 from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id join observing_program p on p.id = o.observing_program_id
      where e.id = f.executed_obs_unit_id and p.proprietary_period_days is not null and e.end_at is not null
        and e.end_at + make_interval(days => p.proprietary_period_days) <= now())`
    const files = yield* (target.kind === "file"
      ? sql<FileRow & { observationId: string }>`
          select f.id, f.relative_path, f.size_bytes, f.raw_data_package_id as package_id, f.executed_obs_unit_id as observation_id, ${publicNow} as public
          from raw_data_file f where f.id = ${target.fileId} and ${readable}`
      : sql<FileRow & { observationId: string }>`
          select f.id, f.relative_path, f.size_bytes, f.raw_data_package_id as package_id, f.executed_obs_unit_id as observation_id, ${publicNow} as public
          from raw_data_file f
          where f.executed_obs_unit_id = ${target.observationId} and f.instrument_module_id = ${target.moduleId}
            and f.state in ('packaged', 'filed') and f.data_product_id is null and ${readable}
          order by f.relative_path`).pipe(Effect.orDie)
    if (files.length === 0) return [DataLinkVotable.notFound(id)]
    const observationId = files[0]!.observationId
    const scoped = yield* inScope(who, observationId)
    const packageIds = [...new Set(files.flatMap((f) => (f.packageId === null ? [] : [f.packageId])))]
    const packages = packageIds.length === 0
      ? []
      : yield* sql<
        PackageLinks.PackageRow
      >`select id, relative_path, size_bytes, checksum, status::text as status from raw_data_package where id in ${
        sql.in(packageIds)
      } order by relative_path`.pipe(Effect.orDie)
    const rows: Array<Link> = []
    for (const f of files) {
      const readableByRange = f.packageId !== null
      rows.push({
        id,
        semantics: "#this",
        ...(readableByRange
          ? { accessUrl: `${base}/api/v1/files/${f.id}/content` }
          : { errorMessage: `NotFoundFault: ${f.relativePath} is not in a package yet; it can be read once it is archived` }),
        description: `raw file ${f.relativePath}, read from the archive and checked against its filed checksum`,
        contentType: "application/octet-stream",
        contentLength: Number(f.sizeBytes),
        localSemantics: "raw-file",
        linkAuth: f.public ? "optional" : "true",
        linkAuthorized: true
      })
    }
    for (const p of packages) {
      // a package holds one observation's files, all public or none
      const isPublic = files.some((f) => f.packageId === p.id && f.public)
      rows.push(
        ...PackageLinks.links(id, base, p, {
          named: `RawDataPackage ${p.relativePath}`,
          localSemantics: "raw-data-package",
          isPublic,
          scoped
        })
      )
    }
    rows.push({
      id,
      semantics: "#auxiliary",
      accessUrl: `${base}/api/v1/staging-requests`,
      description:
        `stage observation ${observationId} whole to a PROCESSING location: POST {"observationIds":["${observationId}"],"location":"<processing location>"} with a scientist's token`,
      contentType: "application/json",
      localSemantics: "staging",
      linkAuth: "true",
      linkAuthorized: canStage(who, scoped)
    })
    if (target.kind === "observation") rows.push(...yield* ProductLinks.derivationLinks(who, publisher, id, observationId))
    return rows
  })
