/**
 * Writing a package with @ccat/core, without the server: a pipeline that produced files (a
 * reduced map, its logs) packs a folder into a RawDataPackage tar the way the lifecycle's
 * packager does: the manifest first, each file checked as it is copied in, the tar's checksum
 * computed in the same pass. The package is complete at its path or absent: a file that changes
 * while it is written refuses it. Exit status 0: written (its checksum is printed); 1: refused,
 * with the reason; 2: wrong arguments.
 *
 *   npx tsx examples/write-package/writePackage.ts <folder> <package.tar> <executedObsUnitId> <instrumentModuleId>
 */
import { PackageWriter } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/** What writing found, as lines to print and an exit status. */
export interface Report {
  readonly ok: boolean
  readonly lines: ReadonlyArray<string>
}

/** The regular files under `folder`, by their paths relative to it (forward slashes), sorted. */
const filesUnder = (folder: string) =>
  Effect.promise(async () => {
    const entries = await fs.readdir(folder, { recursive: true, withFileTypes: true })
    return entries
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name))
      .map((file) => ({ path: file, relativePath: path.relative(folder, file).split(path.sep).join("/") }))
      .sort((a, b) => (a.relativePath < b.relativePath ? -1 : a.relativePath > b.relativePath ? 1 : 0))
  })

/** Packs every file under `folder` into a new package at `output`. */
export const writePackage = (
  folder: string,
  output: string,
  executedObsUnitId: string,
  instrumentModuleId: string
): Effect.Effect<Report> =>
  Effect.gen(function* () {
    const files = yield* filesUnder(folder)
    const result = yield* Effect.either(
      PackageWriter.write(output, { packageId: randomUUID(), executedObsUnitId, instrumentModuleId, files })
    )
    if (Either.isLeft(result)) return { ok: false, lines: [result.left.message] }
    const w = result.right
    return {
      ok: true,
      lines: [
        `RawDataPackage ${w.manifest.packageId}: ${w.manifest.files.length} files, ${w.sizeBytes} bytes, ${w.checksum}`,
        ...w.manifest.files.map((f) => `  ${f.relativePath} ${f.sizeBytes} ${f.checksum}`)
      ]
    }
  })

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [folder, output, obsUnit, module] = process.argv.slice(2)
  if (module === undefined) {
    console.error("usage: writePackage.ts <folder> <package.tar> <executedObsUnitId> <instrumentModuleId>")
    process.exit(2)
  }
  const report = await Effect.runPromise(writePackage(folder, output, obsUnit, module))
  for (const line of report.lines) console.log(line)
  process.exit(report.ok ? 0 : 1)
}
