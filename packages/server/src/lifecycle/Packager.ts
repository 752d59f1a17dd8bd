/**
 * Packaging: RawDataFiles filed at a SOURCE location become RawDataPackage tars at a BUFFER
 * location, and packages waiting in a buffer become DataTransferPackage bundles (a tar of package
 * tars). Core's `ArchiveWriter` reads each member, checks its bytes against its recorded size and
 * checksum as they flow into the tar, and the tar streams into the destination's atomic `put`,
 * which computes the archive's checksum in the same pass. A member that disagrees
 * with its record fails the archive with a `PackagingError` naming it; nothing then appears under
 * the archive's name. The bytes are a pure function of the manifest, the members' bytes and
 * `mtime`, so a retry after a crash writes the same archive with the same checksum.
 *
 * How a worker calls it: `plan(filedFiles, { maxPackageBytes })` → for each planned package
 * insert the RawDataPackage row, then `pack({ packageId, ..., files: planned.files, source,
 * destination, key })`; on success record size and checksum, on `PackagingError` mark
 * `corruptIds` corrupt and `missingIds` missing; a `StorageError` is the location's problem
 * (retry, or fail over to the next BUFFER when Unavailable or full).
 */
import { Checksum, Ids, PackageLayout, PackageManifest, RelativePath, StorageDriver, StorageError } from "@ccat/core"
import { ArchiveWriter } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"

/**
 * Where members are read from: a location's storage service, or any function from a key to a
 * byte stream. Either way a missing object must fail with a NotFound `StorageError`, so it is
 * reported as Missing rather than as a storage failure.
 */
export type Source<E = never> = StorageDriver.Service | ((key: string) => Stream.Stream<Uint8Array, E>)

/** The bytes under `key` at a source. */
export const read = <E>(source: Source<E>, key: string): Stream.Stream<Uint8Array, E | StorageError.StorageError> =>
  typeof source === "function" ? source(key) : source.get(key)

/** One member that could not be archived, with what was recorded and what was found. */
export class FaultyMember extends Schema.Class<FaultyMember>("FaultyMember")({
  /** The RawDataFile id (in a package) or RawDataPackage id (in a bundle). */
  id: Schema.String,
  relativePath: Schema.String,
  problem: Schema.Literal("Corrupt", "Missing"),
  detail: Schema.String,
  expectedSize: Schema.Number,
  expectedChecksum: Schema.String,
  actualSize: Schema.optional(Schema.Number),
  actualChecksum: Schema.optional(Schema.String)
}) {}

/**
 * Why an archive was not written. It crosses the job queue and ends in the ops-db, so it is a
 * Schema.TaggedError: Corrupt (some member's bytes disagree with its record; maybe others are
 * missing too), Missing (members gone from the source, none corrupt), Invalid (the member list
 * itself cannot be archived: unsafe, duplicate or reserved paths).
 */
export class PackagingError extends Schema.TaggedError<PackagingError>("@ccat/server/PackagingError")("PackagingError", {
  reason: Schema.Literal("Corrupt", "Missing", "Invalid"),
  /** The package or bundle being written. */
  archiveId: Schema.String,
  /** Its key at the destination, where nothing was left. */
  key: Schema.String,
  members: Schema.Array(FaultyMember),
  description: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const named = this.members.map((m) => `${m.relativePath} (${m.id}): ${m.problem}, ${m.detail}`).join("; ")
    return `archive ${this.archiveId} not written to ${this.key}: ${this.reason}${named === "" ? "" : `: ${named}`}${
      this.description === undefined ? "" : ` (${this.description})`
    }`
  }
  /** Ids of the members whose bytes disagree with their record: mark them corrupt. */
  get corruptIds(): ReadonlyArray<string> {
    return this.members.filter((m) => m.problem === "Corrupt").map((m) => m.id)
  }
  /** Ids of the members gone from the source: mark them missing. */
  get missingIds(): ReadonlyArray<string> {
    return this.members.filter((m) => m.problem === "Missing").map((m) => m.id)
  }
}

/** What was written: enough to complete the RawDataPackage or DataTransferPackage row. */
export interface Written {
  readonly archiveId: string
  readonly key: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  readonly manifest: PackageManifest.Manifest
}

/** A file to package: a RawDataFile row fits as is. */
export interface FileToPackage {
  readonly id: Ids.RawDataFileId
  readonly relativePath: RelativePath.RelativePath
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  /** Its key at the source location, when it is not `relativePath`. */
  readonly sourceKey?: string | undefined
}

/** How an archive is written, whatever its members. */
export interface WriteOptions<E> {
  readonly source: Source<E>
  readonly destination: StorageDriver.Service
  /** The archive's key at the destination. */
  readonly key: string
  /** Entry modification time; default the epoch. Keep it fixed per archive so retries are identical. */
  readonly mtime?: Date | undefined
  /** Replace an existing object (a retry after a crash between the write and its commit). */
  readonly overwrite?: boolean | undefined
  /** Algorithm of the archive's checksum; default sha256. */
  readonly algorithm?: Checksum.Algorithm | undefined
  /** After the first faulty member, read the rest to name every faulty one (default true). */
  readonly findAllFaults?: boolean | undefined
}

/** What `pack` needs: the RawDataPackage's identity and its files in archive order. */
export interface PackOptions<E> extends WriteOptions<E> {
  readonly packageId: Ids.RawDataPackageId
  readonly executedObsUnitId: Ids.ExecutedObsUnitId
  readonly instrumentModuleId: Ids.InstrumentModuleId
  readonly files: ReadonlyArray<FileToPackage>
}

/** A RawDataPackage to bundle, as recorded when it was written. */
export interface PackageToBundle {
  readonly id: Ids.RawDataPackageId
  readonly relativePath: RelativePath.RelativePath
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  readonly sourceKey?: string | undefined
}

/** What `bundle` needs: the DataTransferPackage's id and its packages in archive order. */
export interface BundleOptions<E> extends WriteOptions<E> {
  readonly bundleId: Ids.DataTransferPackageId
  readonly packages: ReadonlyArray<PackageToBundle>
}

const isFault = (e: unknown): e is ArchiveWriter.MemberFault => e instanceof ArchiveWriter.MemberFault

const faultyMember = (member: PackageManifest.Member, fault: ArchiveWriter.MemberFault) =>
  new FaultyMember({
    id: member.id,
    relativePath: member.relativePath,
    problem: fault.kind,
    detail: fault.detail,
    expectedSize: member.sizeBytes,
    expectedChecksum: member.checksum,
    actualSize: fault.kind === "Missing" ? undefined : fault.actualSize,
    actualChecksum: fault.actualChecksum
  })

const writeArchive = Effect.fn("Packager.writeArchive")(function* <E>(
  manifest: PackageManifest.Manifest,
  sourceKeys: ReadonlyArray<string>,
  options: WriteOptions<E>
) {
  const list = PackageManifest.members(manifest)
  const archiveId = PackageManifest.archiveId(manifest)
  const invalid = PackageManifest.problem(list)
  if (invalid !== undefined) {
    return yield* new PackagingError({ reason: "Invalid", archiveId, key: options.key, members: [], description: invalid })
  }
  const body = (index: number) => read(options.source, sourceKeys[index])
  // a storage service reads a small member in one call, without a stream per file
  const source = options.source
  const whole = typeof source === "function"
    ? undefined
    : (index: number, _member: PackageManifest.Member, limit: number) => source.readAtMost(sourceKeys[index], limit)
  // a disk location's files are read, checked and laid out on a worker thread of the writer's own
  const local = typeof source === "function" ? undefined : StorageDriver.localFolder(source)
  const folder = local === undefined || !sourceKeys.every((k) => RelativePath.problem(k) === undefined)
    ? undefined
    : {
      root: local.root,
      keys: sourceKeys,
      failure: (key: string, problem: StorageDriver.FolderProblem) => local.failure("get", key, problem)
    }
  const sizeHint = PackageLayout.archiveSize(manifest)
  // Large archives' members are read and checked (from a disk location) or only checked (from
  // any other source) on a worker thread of the writer's own, while the destination hashes the
  // tar on another.
  const mtime = Math.floor((options.mtime?.getTime() ?? 0) / 1000)
  const write = options.destination.put(options.key, ArchiveWriter.archive({ manifest, body, whole, folder, mtime }), {
    overwrite: options.overwrite ?? false,
    algorithm: options.algorithm ?? Checksum.defaultAlgorithm,
    sizeHint
  })
  const info = yield* write.pipe(Effect.catchIf(isFault, (first) =>
    Effect.gen(function* () {
      const faults = [faultyMember(list[first.index], first)]
      if (options.findAllFaults ?? true) {
        for (let i = first.index + 1; i < list.length; i++) {
          const found = yield* ArchiveWriter.checkMember(i, list[i], body(i)).pipe(
            Effect.catchAll(() => Effect.succeedNone)
          )
          if (Option.isSome(found)) faults.push(faultyMember(list[i], found.value))
        }
      }
      const reason = faults.some((f) => f.problem === "Corrupt") ? "Corrupt" as const : "Missing" as const
      return yield* new PackagingError({ reason, archiveId, key: options.key, members: faults })
    })))
  if (info.checksum === undefined) {
    return yield* Effect.dieMessage(`storage ${options.destination.name} returned no checksum from put`)
  }
  yield* Effect.annotateCurrentSpan({ archiveId, key: options.key, sizeBytes: info.size, members: list.length })
  return { archiveId, key: options.key, sizeBytes: info.size, checksum: info.checksum, manifest } satisfies Written
})

/**
 * Writes one RawDataPackage: the manifest, then the files in the given order (use `plan`'s
 * order) with their directories, each verified against its filed size and checksum.
 */
export const pack = Effect.fn("Packager.pack")(function* <E = never>(options: PackOptions<E>) {
  const invalid = firstProblem([
    PackageManifest.idProblem("package id", options.packageId),
    PackageManifest.idProblem("ExecutedObsUnit id", options.executedObsUnitId),
    PackageManifest.idProblem("InstrumentModule id", options.instrumentModuleId)
  ], options.files)
  if (invalid !== undefined) {
    return yield* new PackagingError({
      reason: "Invalid",
      archiveId: String(options.packageId),
      key: options.key,
      members: [],
      description: invalid
    })
  }
  // checked above by the schema's rules; the schema's own checks per member cost more than the rest of a small file's trip
  const trusted = { disableValidation: true }
  const manifest = new PackageManifest.PackageManifest({
    version: PackageManifest.formatVersion,
    packageId: options.packageId,
    executedObsUnitId: options.executedObsUnitId,
    instrumentModuleId: options.instrumentModuleId,
    files: options.files.map((f) =>
      new PackageManifest.PackagedFile({ id: f.id, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum }, trusted)
    )
  }, trusted)
  return yield* writeArchive(manifest, options.files.map((f) => f.sourceKey ?? f.relativePath), options)
})

/**
 * Writes one DataTransferPackage: a tar whose members are RawDataPackage tars read from the
 * buffer, each verified against its recorded size and checksum on the way in.
 */
export const bundle = Effect.fn("Packager.bundle")(function* <E = never>(options: BundleOptions<E>) {
  const invalid = firstProblem([PackageManifest.idProblem("bundle id", options.bundleId)], options.packages)
  if (invalid !== undefined) {
    return yield* new PackagingError({
      reason: "Invalid",
      archiveId: String(options.bundleId),
      key: options.key,
      members: [],
      description: invalid
    })
  }
  const trusted = { disableValidation: true }
  const manifest = new PackageManifest.BundleManifest({
    version: PackageManifest.formatVersion,
    bundleId: options.bundleId,
    packages: options.packages.map((p) =>
      new PackageManifest.BundledPackage({ id: p.id, relativePath: p.relativePath, sizeBytes: p.sizeBytes, checksum: p.checksum }, trusted)
    )
  }, trusted)
  return yield* writeArchive(manifest, options.packages.map((p) => p.sourceKey ?? p.relativePath), options)
})

/** The first broken rule among the archive's ids and its members' records. */
const firstProblem = (ids: ReadonlyArray<string | undefined>, records: ReadonlyArray<PackageManifest.Member>): string | undefined => {
  for (const problem of ids) if (problem !== undefined) return problem
  for (const record of records) {
    const problem = PackageManifest.recordProblem(record)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** A filed file as planning sees it: a RawDataFile row fits as is. */
export interface FileToPlan extends FileToPackage {
  readonly executedObsUnitId: Ids.ExecutedObsUnitId
  readonly instrumentModuleId: Ids.InstrumentModuleId
  /** A processed product's file: its packages hold that product's files only. */
  readonly dataProductId?: string | null | undefined
}

/** One package the plan asks for. */
export interface PlannedPackage<F extends FileToPlan> {
  readonly executedObsUnitId: Ids.ExecutedObsUnitId
  readonly instrumentModuleId: Ids.InstrumentModuleId
  /** The processed product whose files these are, if they are a product's. */
  readonly dataProductId?: string | null | undefined
  /** In archive order: by relative path, so a directory's files stay together. */
  readonly files: ReadonlyArray<F>
  /** Sum of the files' sizes (the tar adds about 1 KiB per file and directory). */
  readonly sizeBytes: number
  /** A digest of the group and its file ids: the same files always give the same name. */
  readonly name: string
}

/** The 50 GB default of the seed. */
export const defaultMaxPackageBytes = 50_000_000_000

const byPath = (a: FileToPlan, b: FileToPlan) =>
  a.relativePath < b.relativePath ? -1 : a.relativePath > b.relativePath ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0

/**
 * Splits filed files into packages: grouped by (ExecutedObsUnit, InstrumentModule) and, for a
 * processed product's files, by product; sorted by
 * path, filled in order up to `maxPackageBytes` of file data; a larger file gets a package of its
 * own. Deterministic (input order does not matter), so a retry after a crash plans the same
 * packages, with the same names, from the same files.
 */
export const plan = <F extends FileToPlan>(
  files: ReadonlyArray<F>,
  options: { readonly maxPackageBytes?: number | undefined } = {}
): ReadonlyArray<PlannedPackage<F>> => {
  const max = options.maxPackageBytes ?? defaultMaxPackageBytes
  if (!(max > 0)) throw new RangeError(`maxPackageBytes must be positive, got ${max}`)
  const groups = new Map<string, Array<F>>()
  for (const f of files) {
    const k = `${f.executedObsUnitId}/${f.instrumentModuleId}${f.dataProductId == null ? "" : `/${f.dataProductId}`}`
    const g = groups.get(k)
    if (g === undefined) groups.set(k, [f])
    else g.push(f)
  }
  const out: Array<PlannedPackage<F>> = []
  for (const k of [...groups.keys()].sort()) {
    const sorted = [...groups.get(k)!].sort(byPath)
    let current: Array<F> = []
    let bytes = 0
    const close = () => {
      if (current.length === 0) return
      const first = current[0]
      const name = createHash("sha256").update(`${k}\n${current.map((f) => f.id).join("\n")}`).digest("hex").slice(0, 32)
      out.push({
        executedObsUnitId: first.executedObsUnitId,
        instrumentModuleId: first.instrumentModuleId,
        dataProductId: first.dataProductId ?? null,
        files: current,
        sizeBytes: bytes,
        name
      })
      current = []
      bytes = 0
    }
    for (const f of sorted) {
      if (current.length > 0 && bytes + f.sizeBytes > max) close()
      current.push(f)
      bytes += f.sizeBytes
      if (f.sizeBytes > max) close()
    }
    close()
  }
  return out
}

/** The conventional key of a planned package in a buffer: grouped by observation and module. */
export const packageKey = (planned: PlannedPackage<FileToPlan>): string =>
  `${planned.executedObsUnitId}/${planned.instrumentModuleId}/${planned.name}.tar`
