/**
 * Rows for tests on a real ops-db: a small observatory and the demo's two sites, and helpers
 * that file observations, files and packages against them. Every call makes fresh names, so a
 * suite can build as many independent worlds as it needs in one database.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { randomBytes, randomUUID } from "node:crypto"
import type * as Accounts from "../Accounts.js"
import * as Checksum from "../Checksum.js"
import type { ConstraintError } from "../ConstraintError.js"
import * as Ids from "../Ids.js"
import type * as Observational from "../Observational.js"
import type * as RawData from "../RawData.js"
import type { RelativePath } from "../RelativePath.js"
import * as Repositories from "../Repositories.js"
import type * as Storage from "../Storage.js"

/** What a fixture needs and may fail with. */
export type Fx<A> = Effect.Effect<A, ConstraintError | SqlError, SqlClient.SqlClient>

/** A random sha256 checksum, for rows whose bytes do not exist. */
export const checksum = (): Checksum.Checksum => Checksum.make("sha256", randomBytes(32).toString("hex"))

/** A random suffix that keeps names unique within a database. */
export const suffix = (): string => randomBytes(4).toString("hex")

/** A fresh UUID as a branded id, for entities whose id the caller makes. */
export const uuid = <B>(): B => randomUUID() as B

/** An observatory with one instrument of two modules, a program and an ObsUnit; two sites with their locations; a scientist. */
export interface World {
  readonly observatory: Observational.Observatory
  readonly telescope: Observational.Telescope
  readonly instrument: Observational.Instrument
  readonly modules: readonly [Observational.InstrumentModule, Observational.InstrumentModule]
  readonly program: Observational.ObservingProgram
  readonly obsUnit: Observational.ObsUnit
  readonly chile: Storage.Site
  readonly cologne: Storage.Site
  readonly source: Storage.DataLocation
  readonly chileBuffer: Storage.DataLocation
  readonly cologneBuffer: Storage.DataLocation
  readonly archive: Storage.DataLocation
  readonly processing: Storage.DataLocation
  readonly scientist: Accounts.Account
}

const location = (
  site: Storage.Site,
  name: string,
  type: Storage.LocationType,
  technology: Storage.StorageTechnology,
  priority = 0
) =>
  Repositories.dataLocations.insert({
    siteId: site.id,
    name: Ids.ShortName.make(name),
    type,
    technology,
    driverConfig: { root: `/data/${name}` },
    priority,
    readable: true,
    writable: true,
    deletable: type !== "LONG_TERM_ARCHIVE",
    capacityBytes: null
  })

/** Builds a fresh World. */
export const world: Fx<World> = Effect.gen(function* () {
  const s = suffix()
  const observatory = yield* Repositories.observatories.insert({ name: `CCAT ${s}`, description: "" })
  const telescope = yield* Repositories.telescopes.insert({ observatoryId: observatory.id, name: "FYST", description: "" })
  const instrument = yield* Repositories.instruments.insert({ telescopeId: telescope.id, name: "Prime-Cam", description: "" })
  const m1 = yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "280GHz", description: "" })
  const m2 = yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "350GHz", description: "" })
  const program = yield* Repositories.observingPrograms.insert({ name: `deep-field-${s}`, title: "Deep field" })
  const obsUnit = yield* Repositories.obsUnits.insert({
    observingProgramId: program.id,
    instrumentId: instrument.id,
    name: "deep56-scan",
    target: "Deep56",
    plannedDurationSeconds: 3600,
    configuration: { scan: "raster" }
  })
  const chile = yield* Repositories.sites.insert({ name: `Chile ${s}`, shortName: Ids.ShortName.make(`chile-${s}`), role: "secondary" })
  const cologne = yield* Repositories.sites.insert({ name: `Cologne ${s}`, shortName: Ids.ShortName.make(`cologne-${s}`), role: "main" })
  const source = yield* location(chile, `chile-${s}-source`, "SOURCE", "disk")
  const chileBuffer = yield* location(chile, `chile-${s}-buffer`, "BUFFER", "disk")
  const cologneBuffer = yield* location(cologne, `cologne-${s}-buffer`, "BUFFER", "disk")
  const archive = yield* location(cologne, `cologne-${s}-archive`, "LONG_TERM_ARCHIVE", "s3")
  const processing = yield* location(cologne, `cologne-${s}-processing`, "PROCESSING", "disk")
  const scientist = yield* Repositories.accounts.insert({
    name: Ids.ShortName.make(`sci-${s}`),
    displayName: "A Scientist",
    email: null,
    role: "scientist",
    active: true
  })
  return {
    observatory,
    telescope,
    instrument,
    modules: [m1, m2],
    program,
    obsUnit,
    chile,
    cologne,
    source,
    chileBuffer,
    cologneBuffer,
    archive,
    processing,
    scientist
  }
})

/** Files an ExecutedObsUnit of the World's ObsUnit, as an instrument would (its own id). */
export const executedObsUnit = (w: World): Fx<Observational.ExecutedObsUnit> =>
  Repositories.executedObsUnits.insert({
    id: uuid(),
    obsUnitId: w.obsUnit.id,
    startAt: DateTime.unsafeMake("2026-05-01T03:00:00Z"),
    endAt: DateTime.unsafeMake("2026-05-01T04:00:00Z"),
    status: "completed",
    conditions: { pwvMm: 0.6 },
    quality: "unassessed",
    metadata: { scanId: 17 }
  })

/** Files one RawDataFile of an observation at the World's SOURCE location. */
export const rawDataFile = (
  w: World,
  eou: Observational.ExecutedObsUnit,
  path = `scan/${suffix()}.fits`
): Fx<RawData.RawDataFile> =>
  Repositories.rawDataFiles.insert({
    id: uuid(),
    executedObsUnitId: eou.id,
    instrumentModuleId: w.modules[0].id,
    relativePath: path as RelativePath,
    sizeBytes: 1024,
    checksum: checksum(),
    sourceLocationId: w.source.id
  })

/** A RawDataPackage (pending, not yet written) for an observation's first module. */
export const rawDataPackage = (w: World, eou: Observational.ExecutedObsUnit): Fx<RawData.RawDataPackage> =>
  Repositories.rawDataPackages.insert({
    executedObsUnitId: eou.id,
    instrumentModuleId: w.modules[0].id,
    relativePath: `packages/${eou.id}/${suffix()}.tar` as RelativePath,
    sizeBytes: null,
    checksum: null
  })

/** A DataTransferPackage (pending) holding the given packages. */
export const dataTransferPackage = (
  packages: ReadonlyArray<RawData.RawDataPackage>
): Fx<RawData.DataTransferPackage> =>
  Effect.gen(function* () {
    const bundle = yield* Repositories.dataTransferPackages.insert({
      relativePath: `bundles/${suffix()}.tar` as RelativePath,
      sizeBytes: null,
      checksum: null
    })
    for (const p of packages) {
      yield* Repositories.dataTransferPackageMembers.insert({ dataTransferPackageId: bundle.id, rawDataPackageId: p.id })
    }
    return bundle
  })

/** A first DataTransfer attempt of a bundle from Chile's buffer to Cologne's. */
export const dataTransfer = (w: World, bundle: RawData.DataTransferPackage): Fx<RawData.DataTransfer> =>
  Repositories.dataTransfers.insert({
    dataTransferPackageId: bundle.id,
    rawDataPackageId: null,
    routeId: null,
    fromLocationId: w.chileBuffer.id,
    toLocationId: w.cologneBuffer.id,
    previousAttemptId: null,
    attempt: 1,
    adapter: "bbcp"
  })

/** A PRESENT, verified copy of a package at a location. */
export const physicalCopy = (
  location: Storage.DataLocation,
  pkg: RawData.RawDataPackage,
  status: Storage.PhysicalCopyStatus = "PRESENT"
): Fx<Storage.PhysicalCopy> =>
  Repositories.physicalCopies.insert({
    rawDataFileId: null,
    rawDataPackageId: pkg.id,
    dataTransferPackageId: null,
    dataLocationId: location.id,
    path: pkg.relativePath,
    sizeBytes: 4096,
    checksum: checksum(),
    status,
    verifiedAt: DateTime.unsafeNow()
  })
