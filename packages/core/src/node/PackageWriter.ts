/**
 * A RawDataPackage tar written from local files, as the lifecycle's packager writes one: the
 * manifest first, then each file checked against its recorded size and checksum as it is copied
 * in (`ArchiveWriter`), the tar's own checksum computed in the same pass on the shared hashing
 * ring. The tar is written under a temporary name beside `output` and renamed when complete, so
 * `output` is either absent or a whole, verified package; a file that changed, grew, shrank or
 * vanished meanwhile refuses the package, naming it, and leaves nothing behind.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Checksum from "../Checksum.js"
import type * as Ids from "../Ids.js"
import * as PackageManifest from "../PackageManifest.js"
import type * as RelativePath from "../RelativePath.js"
import * as StorageError from "../StorageError.js"
import * as ArchiveWriter from "./ArchiveWriter.js"
import * as HashRing from "./HashRing.js"
import * as Hashing from "./Hashing.js"

/** A file on this machine to put into the package. */
export interface LocalFile {
  /** Where the file is. */
  readonly path: string
  /** Its path inside the package: forward slashes, no `.`, `..` or empty parts. */
  readonly relativePath: string
  /** Its RawDataFile id; default a new UUID. */
  readonly id?: string | undefined
  /**
   * Its size and checksum as recorded when it was filed: the package is refused if the bytes
   * differ. Without them the file is measured in a first pass, and must not change until the
   * package is written.
   */
  readonly sizeBytes?: number | undefined
  readonly checksum?: Checksum.Checksum | undefined
}

/** What the package is and holds. */
export interface WriteOptions {
  readonly packageId: string
  readonly executedObsUnitId: string
  readonly instrumentModuleId: string
  /** In archive order. */
  readonly files: ReadonlyArray<LocalFile>
  /** Modification time of every entry; default the epoch, so writing again gives the same bytes. */
  readonly mtime?: Date | undefined
  /** Algorithm of the checksums measured here and of the tar's; default sha256. */
  readonly algorithm?: Checksum.Algorithm | undefined
  /** Replace an existing file at `output` (default: refuse). */
  readonly overwrite?: boolean | undefined
}

/** The package written. */
export interface Written {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  readonly manifest: PackageManifest.PackageManifest
}

/**
 * Why no package was written: Invalid (an id, path or record the format does not allow),
 * Missing (a file is gone), Unreadable (a file cannot be read), Corrupt (a file's bytes differ
 * from its record, or changed while the package was written), Unwritable (the output cannot be
 * written, or exists).
 */
export class PackageWriteError extends Schema.TaggedError<PackageWriteError>("@ccat/core/PackageWriteError")("PackageWriteError", {
  reason: Schema.Literal("Invalid", "Missing", "Unreadable", "Corrupt", "Unwritable"),
  /** The package's path. */
  output: Schema.String,
  /** The file at fault, by its path on this machine, if one is. */
  file: Schema.optional(Schema.String),
  description: Schema.String
}) {
  override get message(): string {
    return `package ${this.output} not written: ${this.reason}${this.file === undefined ? "" : ` (${this.file})`}: ${this.description}`
  }
}

const causeText = (cause: unknown) => cause instanceof Error ? cause.message : String(cause)

/** The file's bytes as the writer pulls them; a file that is gone fails NotFound, as a storage's get does. */
const fileBody = (path: string): Stream.Stream<Uint8Array, StorageError.StorageError> =>
  Stream.suspend(() =>
    Stream.fromAsyncIterable(
      fs.createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>,
      (cause) =>
        new StorageError.StorageError({
          reason: (cause as { code?: string }).code === "ENOENT" ? "NotFound" : "Unavailable",
          driver: "file",
          method: "get",
          key: path,
          description: causeText(cause)
        })
    )
  ).pipe(Stream.map((b): Uint8Array => b))

/** The manifest of the files, measuring those without a record; or why there can be none. */
const manifestOf = (output: string, options: WriteOptions) =>
  Effect.gen(function* () {
    const invalid = (description: string, file?: string) => new PackageWriteError({ reason: "Invalid", output, file, description })
    for (const [what, id] of [
      ["package id", options.packageId],
      ["ExecutedObsUnit id", options.executedObsUnitId],
      ["InstrumentModule id", options.instrumentModuleId]
    ]) {
      const problem = PackageManifest.idProblem(what, id)
      if (problem !== undefined) return yield* invalid(problem)
    }
    const algorithm = options.algorithm ?? Checksum.defaultAlgorithm
    const trusted = { disableValidation: true }
    const files: Array<PackageManifest.PackagedFile> = []
    for (const file of options.files) {
      let sizeBytes = file.sizeBytes
      let checksum = file.checksum
      if (sizeBytes === undefined || checksum === undefined) {
        const measured = yield* Hashing.hashFile(file.path, checksum === undefined ? algorithm : Checksum.parse(checksum).algorithm).pipe(
          Effect.mapError((e) =>
            new PackageWriteError({
              reason: (e.cause as { code?: string }).code === "ENOENT" ? "Missing" : "Unreadable",
              output,
              file: file.path,
              description: e.message
            })
          )
        )
        sizeBytes ??= measured.size
        checksum ??= measured.checksum
      }
      const member = {
        id: (file.id ?? randomUUID()) as Ids.RawDataFileId,
        relativePath: file.relativePath as RelativePath.RelativePath,
        sizeBytes,
        checksum
      }
      const problem = PackageManifest.recordProblem(member)
      if (problem !== undefined) return yield* invalid(problem, file.path)
      files.push(new PackageManifest.PackagedFile(member, trusted))
    }
    const problem = PackageManifest.problem(files)
    if (problem !== undefined) return yield* invalid(problem)
    return new PackageManifest.PackageManifest({
      version: PackageManifest.formatVersion,
      packageId: options.packageId as Ids.RawDataPackageId,
      executedObsUnitId: options.executedObsUnitId as Ids.ExecutedObsUnitId,
      instrumentModuleId: options.instrumentModuleId as Ids.InstrumentModuleId,
      files
    }, trusted)
  })

/** Waits for a hasher off this thread when it asks to. */
const hasherReady = (hasher: ReturnType<typeof HashRing.hasher>, final: boolean) =>
  Effect.suspend(() => {
    const wait = hasher.ready?.(final)
    return wait === undefined ? Effect.void : Effect.promise(() => wait)
  })

/**
 * Writes the package of `options.files` to `output`. The files are read twice when their
 * records are not given (measured, then written), once when they are.
 */
export const write = Effect.fn("PackageWriter.write")(function* (output: string, options: WriteOptions) {
  const manifest = yield* manifestOf(output, options)
  const unwritable = (description: string) => new PackageWriteError({ reason: "Unwritable", output, description })
  const algorithm = options.algorithm ?? Checksum.defaultAlgorithm
  const temporary = nodePath.join(nodePath.dirname(output), `.${nodePath.basename(output)}.${randomBytes(6).toString("hex")}.partial`)
  const paths = options.files.map((f) => f.path)
  const tar = ArchiveWriter.archive({
    manifest,
    body: (index) => fileBody(paths[index]),
    mtime: Math.floor((options.mtime?.getTime() ?? 0) / 1000)
  })
  const written = Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () => fs.promises.open(temporary, "wx"),
      catch: (e) => unwritable(`cannot create ${temporary}: ${causeText(e)}`)
    }),
    (handle) =>
      Effect.gen(function* () {
        const hasher = HashRing.hasher(algorithm)
        let sizeBytes = 0
        yield* Stream.runForEach(tar, (part) =>
          Effect.zipRight(
            hasherReady(hasher, false),
            Effect.tryPromise({
              try: async () => {
                hasher.update(part)
                sizeBytes += part.length
                for (let at = 0; at < part.length;) at += (await handle.write(part, at)).bytesWritten
              },
              catch: (e) => unwritable(`cannot write ${temporary}: ${causeText(e)}`)
            })
          ))
        yield* hasherReady(hasher, true)
        const checksum = Checksum.make(algorithm, hasher.digest())
        yield* Effect.tryPromise({ try: () => handle.sync(), catch: (e) => unwritable(`cannot sync ${temporary}: ${causeText(e)}`) })
        return { sizeBytes, checksum }
      }),
    (handle) => Effect.promise(() => handle.close().catch(() => undefined))
  )
  const fault = (f: ArchiveWriter.MemberFault) =>
    new PackageWriteError({
      reason: f.kind,
      output,
      file: paths[f.index],
      description: `${manifest.files[f.index].relativePath}: ${f.detail}`
    })
  const done = yield* written.pipe(
    Effect.catchTag("MemberFault", (f) => Effect.fail(fault(f))),
    Effect.catchTag(
      "StorageError",
      (e) => Effect.fail(new PackageWriteError({ reason: "Unreadable", output, file: e.key, description: e.message }))
    ),
    Effect.tap(() =>
      Effect.tryPromise({
        // a link fails if `output` exists, where a rename would replace it
        try: () => options.overwrite === true ? fs.promises.rename(temporary, output) : fs.promises.link(temporary, output),
        catch: (e) =>
          unwritable(
            (e as { code?: string }).code === "EEXIST" ? `${output} exists` : `cannot move the package to ${output}: ${causeText(e)}`
          )
      })
    ),
    Effect.ensuring(Effect.promise(() => fs.promises.rm(temporary, { force: true })))
  )
  yield* Effect.annotateCurrentSpan({ output, sizeBytes: done.sizeBytes, members: manifest.files.length })
  return { path: output, sizeBytes: done.sizeBytes, checksum: done.checksum, manifest } satisfies Written
})
