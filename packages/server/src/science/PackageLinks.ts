/**
 * The DataLink rows of one RawDataPackage, for a raw observation's dataset and a product's alike:
 * - `#package` (the datalink vocabulary's "single download package": #this and what goes with it
 *   in one downloadable archive): the package's tar, streamed from an online copy and checked
 *   against the package's checksum (`PackageContent`);
 * - `#documentation` (structured metadata helping to work with #this): the package's record in
 *   the API, its copies and journey, for an account whose grants cover it.
 */
import type { Link } from "./DataLinkVotable.js"

/** A package as DataLink describes it. */
export interface PackageRow {
  readonly id: string
  readonly relativePath: string
  readonly sizeBytes: string | null
  readonly checksum: string | null
  readonly status: string
}

/** How the package is to be described and who may follow its links. */
export interface Options {
  /** e.g. `RawDataPackage <path>` or `RawDataPackage <path> of product <name>`. */
  readonly named: string
  readonly localSemantics: string
  /** Whether the data is public now: its tar is then readable without a token. */
  readonly isPublic: boolean
  /** Whether the caller's account (not the public rule) covers it: the API's record is behind that. */
  readonly scoped: boolean
}

/** The `#package` and `#documentation` rows of one package. */
export const links = (id: string, baseUrl: string, p: PackageRow, options: Options): Array<Link> => {
  const written = p.sizeBytes !== null && p.checksum !== null
  const tar: Link = written
    ? {
      id,
      semantics: "#package",
      accessUrl: `${baseUrl}/api/v1/packages/${p.id}/content`,
      description: `${options.named}: the whole tar, read from the archive and checked against its checksum`,
      contentType: "application/x-tar",
      contentLength: Number(p.sizeBytes),
      localSemantics: options.localSemantics,
      linkAuth: options.isPublic ? "optional" : "true",
      linkAuthorized: true
    }
    : { id, semantics: "#package", errorMessage: `NotFoundFault: ${options.named} is not written yet; its tar can be read once it is` }
  return [tar, {
    id,
    semantics: "#documentation",
    accessUrl: `${baseUrl}/api/v1/packages/${p.id}`,
    description: `${options.named} (${p.status}${written ? `, a ${p.sizeBytes}-byte tar` : ""}): its record, copies and journey in the API`,
    contentType: "application/json",
    localSemantics: `${options.localSemantics}-record`,
    linkAuth: "true",
    linkAuthorized: options.scoped
  }]
}
