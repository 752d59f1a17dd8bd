/**
 * What the lifecycle benches share: a Chile → Cologne topology on local disks, the filing of
 * synthetic observations at chile-source as an instrument would, and the condition that ends a
 * run (every file packaged, every package verified in cologne-buffer).
 */
import { Checksum, Ids, Repositories } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** An integer from the environment, within bounds; the process ends with a clear message otherwise. */
export const num = (name: string, fallback: number, min: number, max: number): number => {
  const raw = process.env[name]
  const v = raw === undefined || raw === "" ? fallback : Number(raw)
  if (!(Number.isInteger(v) && v >= min && v <= max)) {
    console.error(`bench: ${name} must be an integer from ${min} to ${max}, got ${raw}`)
    process.exit(2)
  }
  return v
}

/** Chile (SOURCE, BUFFER) → Cologne (BUFFER, archive) over the local route; default leases. */
export const config = (dir: string) => {
  const root = (name: string) => ({ root: path.join(dir, "locations", name) })
  return {
    dataDir: path.join(dir, "data"),
    sites: [
      {
        name: "chile",
        shortName: "cl",
        role: "secondary",
        locations: [
          { name: "chile-source", type: "SOURCE", technology: "disk", driver: root("chile-source") },
          { name: "chile-buffer", type: "BUFFER", technology: "disk", driver: root("chile-buffer") }
        ]
      },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: root("cologne-buffer") },
          {
            name: "cologne-archive",
            type: "LONG_TERM_ARCHIVE",
            technology: "disk",
            driver: root("cologne-archive"),
            retention: { keepForever: true }
          }
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: {
      maxPackageBytes: "1 MB",
      bundleTargetBytes: "3 MB",
      bundleMaxWait: "1 seconds",
      archiveCopies: 1,
      audit: { inventoryEveryHours: 0 }
    }
  }
}

/** Writes the observations' files at chile-source and files them, closed, as an instrument would. */
export const fileAll = (source: string, observations: number, filesPerObs: number, fileBytes: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const s = randomBytes(3).toString("hex")
    const observatory = yield* Repositories.observatories.insert({ name: `CCAT ${s}`, description: "" })
    const telescope = yield* Repositories.telescopes.insert({ observatoryId: observatory.id, name: "FYST", description: "" })
    const instrument = yield* Repositories.instruments.insert({ telescopeId: telescope.id, name: `Prime-Cam ${s}`, description: "" })
    const module = yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "280GHz", description: "" })
    const program = yield* Repositories.observingPrograms.insert({ name: `bench-${s}`, title: "Bench" })
    const obsUnit = yield* Repositories.obsUnits.insert({
      observingProgramId: program.id,
      instrumentId: instrument.id,
      name: "deep56",
      target: "Deep56",
      plannedDurationSeconds: 3600,
      configuration: {}
    })
    const [location] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
    for (let o = 0; o < observations; o++) {
      const eou = yield* Repositories.executedObsUnits.insert({
        id: randomUUID() as Ids.ExecutedObsUnitId,
        obsUnitId: obsUnit.id,
        startAt: DateTime.unsafeMake("2026-05-01T03:00:00Z"),
        endAt: DateTime.unsafeMake("2026-05-01T04:00:00Z"),
        status: "completed",
        conditions: {},
        quality: "unassessed",
        metadata: {}
      })
      for (let f = 0; f < filesPerObs; f++) {
        const relativePath = `${eou.id}/scan-${f}.fits`
        const bytes = randomBytes(fileBytes)
        yield* Effect.promise(() =>
          fs.mkdir(path.join(source, eou.id), { recursive: true }).then(() => fs.writeFile(path.join(source, relativePath), bytes))
        )
        yield* Repositories.rawDataFiles.insert({
          id: randomUUID() as Ids.RawDataFileId,
          executedObsUnitId: eou.id,
          instrumentModuleId: module.id,
          relativePath: relativePath as never,
          sizeBytes: fileBytes,
          checksum: Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex")),
          sourceLocationId: location!.id as Ids.DataLocationId
        })
      }
    }
  })

/** Every file packaged and every package verified in cologne-buffer. */
export const arrived = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ files: number; packaged: number; packages: number; arrived: number }>`
    select (select count(*)::int from raw_data_file) as files,
      (select count(*)::int from raw_data_file where state = 'packaged') as packaged,
      (select count(*)::int from raw_data_package) as packages,
      (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id
       where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.verified_at is not null) as arrived`
).pipe(Effect.map(([r]) => r!.files > 0 && r!.packaged === r!.files && r!.packages > 0 && r!.arrived >= r!.packages))
