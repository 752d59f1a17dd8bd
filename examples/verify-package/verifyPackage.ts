/**
 * Verifying a package with @ccat/core, without the server: a pipeline that holds a package tar
 * (fetched from an archive, found on a staging disk) checks every member against the manifest
 * inside it, and against the catalog's checksum of the whole package when it has one, before
 * it trusts the data. Exit status 0: every member verified; 1: the package is bad (each bad
 * member is printed); 2: wrong arguments.
 *
 *   npx tsx examples/verify-package/verifyPackage.ts <package.tar> [sha256:<catalog checksum>]
 */
import { Checksum, PackageManifest, type PackageReader } from "@ccat/core"
import { PackageFile } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { pathToFileURL } from "node:url"

/** What the verification found, as lines to print and an exit status. */
export interface Report {
  readonly ok: boolean
  readonly lines: ReadonlyArray<string>
}

/** Verifies the package at `path` (and its whole bytes against `checksum` when given). */
export const verifyPackage = (path: string, checksum?: string): Effect.Effect<Report> =>
  Effect.gen(function* () {
    const expected = checksum === undefined ? undefined : Schema.decodeUnknownEither(Checksum.Checksum)(checksum)
    if (expected !== undefined && Either.isLeft(expected)) return { ok: false, lines: [`not a checksum: ${checksum}`] }
    const result = yield* Effect.either(PackageFile.verify(path, { checksum: expected?.right }))
    if (Either.isLeft(result)) return { ok: false, lines: describe(result.left) }
    const v = result.right
    const kind = v.manifest._tag === "RawDataPackage" ? "RawDataPackage" : "DataTransferPackage"
    return {
      ok: true,
      lines: [
        `${kind} ${v.archiveId}: ${v.members.length} members verified, ${v.sizeBytes} bytes${
          v.checksum === undefined ? "" : `, ${v.checksum}`
        }`,
        ...PackageManifest.members(v.manifest).map((m) => `  ${m.relativePath} ${m.sizeBytes} ${m.checksum}`)
      ]
    }
  })

const describe = (e: PackageReader.PackageReadError): ReadonlyArray<string> => [
  `${e.reason}: ${e.description}${e.archiveId === undefined ? "" : ` (package ${e.archiveId})`}`,
  ...e.members.map((m) => `  BAD ${m.relativePath} (${m.id}): ${m.detail}`)
]

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [path, checksum] = process.argv.slice(2)
  if (path === undefined) {
    console.error("usage: verifyPackage.ts <package.tar> [sha256:<checksum>]")
    process.exit(2)
  }
  const report = await Effect.runPromise(verifyPackage(path, checksum))
  for (const line of report.lines) console.log(line)
  process.exit(report.ok ? 0 : 1)
}
