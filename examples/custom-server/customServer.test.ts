/**
 * The custom server of this folder on the real lifecycle: a configuration whose long-term
 * archive is the example in-memory driver, the reference server's assembly from @ccat/server
 * with that driver registered, a real ops-db. Observations filed through @ccat/client are
 * ARCHIVED on the custom driver (its storage holds each package), staged back byte-identical
 * through the API, and cleaned up from SOURCE, BUFFER and PROCESSING. A configuration naming an
 * unregistered technology, or a misspelt option of the custom driver, is refused at start.
 */
import { Accounts, Ids, Repositories } from "@ccat/core"
import { createClient } from "@ccat/client"
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import { Main, ServerConfig, Storages } from "@ccat/server"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { drivers } from "./server.js"

/** This folder's ccat.yaml with its folders moved under `dir`, on the database at `url`. */
const configIn = async (dir: string, url: string, edit: (yaml: string) => string = (y) => y) => {
  const example = await fs.readFile(new URL("./ccat.yaml", import.meta.url), "utf8")
  const yaml = edit(example.replaceAll("/tmp/ccat-custom-server", dir)) + `\nserver: { port: 0 }\ndatabase: { url: "${url}" }\n`
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(file, yaml)
  return file
}

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-custom-server-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** An instrument team and a scientist of one program, each with a token, as an operator would make them. */
const accounts = Effect.gen(function* () {
  const s = randomBytes(3).toString("hex")
  const observatory = yield* Repositories.observatories.insert({ name: `CCAT ${s}`, description: "" })
  const telescope = yield* Repositories.telescopes.insert({ observatoryId: observatory.id, name: "FYST", description: "" })
  const instrument = yield* Repositories.instruments.insert({ telescopeId: telescope.id, name: `Prime-Cam ${s}`, description: "" })
  yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "280GHz", description: "" })
  const program = yield* Repositories.observingPrograms.insert({ name: `deep-field-${s}`, title: "Deep field" })
  const obsUnit = yield* Repositories.obsUnits.insert({
    observingProgramId: program.id,
    instrumentId: instrument.id,
    name: "deep56",
    target: "Deep56",
    plannedDurationSeconds: 600,
    configuration: {}
  })
  const account = (name: string, role: "instrument" | "scientist") =>
    Repositories.accounts.insert({ name: Ids.ShortName.make(`${name}-${s}`), displayName: name, email: null, role, active: true })
  const team = yield* account("daq", "instrument")
  const scientist = yield* account("sci", "scientist")
  yield* Repositories.instrumentAccess.insert({ accountId: team.id, instrumentId: instrument.id })
  yield* Repositories.programAccess.insert({ accountId: scientist.id, observingProgramId: program.id })
  const token = (accountId: Ids.AccountId) =>
    Effect.gen(function* () {
      const t = yield* Accounts.generateToken
      yield* Repositories.apiTokens.insert({
        accountId,
        label: "example",
        prefix: t.prefix,
        secretSha256: t.secretSha256,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null
      } as never)
      return t.token
    })
  return { obsUnitId: obsUnit.id, instrumentToken: yield* token(team.id), scientistToken: yield* token(scientist.id) }
})

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

describe("examples/custom-server", () => {
  it.live("archives on the custom driver, stages back byte-identical and cleans up, on the real lifecycle", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const db = yield* TestDatabase.freshDatabase
      const configFile = yield* Effect.promise(() => configIn(dir, Redacted.value(db.url)))
      const registries = yield* Main.registriesOf({ drivers })
      const config = yield* ServerConfig.load({ configFile, registries })
      const server = yield* Layer.build(Main.serverLayer(config, "all", registries))
      const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, server)
      const address = Context.get(server, HttpServer.HttpServer).address
      const baseUrl = `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}`
      const who = yield* run(accounts)

      // an instrument writes two observations' files at the SOURCE and files them through @ccat/client
      const filed = new Map<string, string>()
      const observationIds: Array<string> = []
      const instrument = yield* Effect.promise(() => createClient({ baseUrl, token: who.instrumentToken }))
      for (let o = 0; o < 2; o++) {
        const id = randomUUID()
        observationIds.push(id)
        const files = Array.from({ length: 4 }, (_, f) => {
          const relativePath = `scan-${o}/part-${f}.dat`
          const bytes = randomBytes(f === 0 ? 700_000 : 30_000 + f)
          filed.set(relativePath, sha256(bytes))
          return { id: randomUUID(), module: "280GHz", relativePath, sizeBytes: bytes.length, checksum: sha256(bytes), bytes }
        })
        yield* Effect.promise(async () => {
          for (const f of files) {
            const file = path.join(dir, "chile-source", f.relativePath)
            await fs.mkdir(path.dirname(file), { recursive: true })
            await fs.writeFile(file, f.bytes)
          }
          await instrument.fileObservation({ id, obsUnitId: who.obsUnitId, startAt: new Date(Date.now() - 60_000), metadata: {} })
          await instrument.addFiles(id, { sourceLocation: "chile-source", files: files.map(({ bytes: _, ...f }) => f) })
          await instrument.closeObservation(id, { endAt: new Date(), status: "completed" })
        })
      }
      yield* Effect.promise(() => instrument.close())

      // ARCHIVED: every package completed, with a verified copy at the archive the custom driver serves
      const archived = run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ packages: number; archived: number; copies: number }>`
        select (select count(*)::int from raw_data_package) as packages,
          (select count(*)::int from raw_data_package where status = 'completed') as archived,
          (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id
            where l.name = 'cologne-archive' and c.raw_data_package_id is not null and c.status = 'PRESENT' and c.verified_at is not null) as copies`))
        .pipe(Effect.map(([r]) => r.packages > 0 && r.archived === r.packages && r.copies === r.packages))
      yield* waitUntil("every package ARCHIVED on the memory archive", archived, 40_000)
      const [archive] = yield* run(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql<{ id: string; name: string; technology: string; driverConfig: Record<string, unknown> }>`
        select id, name, technology::text as technology, driver_config from data_location where name = 'cologne-archive'`
        )
      )
      assert.strictEqual(archive.technology, "memory")
      const storage = yield* Context.get(server, Storages.Storages).of(archive)
      assert.strictEqual(storage.name, "cologne-memory-archive")
      const copies = yield* run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ path: string; sizeBytes: number; checksum: string }>`
        select c.path, c.size_bytes, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-archive' and c.raw_data_package_id is not null`))
      for (const c of copies) {
        // the custom driver holds each package's bytes, whose checksum is the one recorded
        const bytes = yield* Stream.runCollect(storage.get(c.path as never)).pipe(Effect.map((chunks) => Buffer.concat([...chunks])))
        assert.strictEqual(bytes.length, Number(c.sizeBytes))
        assert.strictEqual(sha256(bytes), c.checksum)
      }

      // a scientist has both observations staged at cologne-processing, recalled from the custom driver
      const scientist = yield* Effect.promise(() => createClient({ baseUrl, token: who.scientistToken }))
      const request =
        (yield* Effect.promise(() =>
          scientist.api.staging.create({ payload: { location: "cologne-processing", observationIds } } as never)
        )) as { readonly id: string }
      const staged = yield* Effect.promise(() => scientist.waitForStaging(request.id, { pollCapMs: 500 }))
      yield* Effect.promise(() => scientist.close())
      assert.strictEqual(staged.paths.length, filed.size)
      for (const [relativePath, checksum] of filed) {
        const local = staged.paths.find((p) => p.endsWith(`/${relativePath}`))
        assert.isDefined(local, `${relativePath} staged`)
        assert.strictEqual(sha256(yield* Effect.promise(() => fs.readFile(local!))), checksum, relativePath)
      }

      // cleaned up: no live copy outside the archive (staged copies expire after 5 s), the SOURCE folder empty
      const outside = run(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.type <> 'LONG_TERM_ARCHIVE' and c.status <> 'DELETED'`)).pipe(Effect.map(([r]) => r.n === 0))
      yield* waitUntil("SOURCE, BUFFER and staged copies deleted", outside, 30_000)
      const left = yield* Effect.promise(() =>
        fs.readdir(path.join(dir, "chile-source"), { recursive: true, withFileTypes: true }).then((es) => es.filter((e) => e.isFile()))
      )
      assert.deepStrictEqual(left.map((e) => e.name), [])
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)), 60_000)

  it.live("refuses at start a technology no driver is registered for, and a misspelt option of the custom driver", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const file = yield* Effect.promise(() =>
        configIn(
          dir,
          "postgres://unused",
          (y) =>
            y.replace("driver: { label: cologne-memory-archive }", "driver: { lable: x }").replace(
              "technology: disk, driver: { root: " + dir + "/cologne-processing",
              "technology: nfs, driver: { root: " + dir + "/cologne-processing"
            )
        )
      )
      const registries = yield* Main.registriesOf({ drivers })
      const exit = yield* Effect.exit(ServerConfig.load({ configFile: file, registries }))
      assert.isTrue(Exit.isFailure(exit))
      const message = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.message : ""
      assert.include(message, "sites[1].locations[1].driver.lable: is unexpected")
      assert.include(
        message,
        `sites[1].locations[2].technology: no storage driver is registered for "nfs"; registered: disk, memory, s3, tape`
      )
      // without the custom driver registered, its locations are refused too
      const plain = yield* Effect.exit(ServerConfig.load({ configFile: yield* Effect.promise(() => configIn(dir, "postgres://unused")) }))
      assert.include(
        Exit.isFailure(plain) && plain.cause._tag === "Fail" ? plain.cause.error.message : "",
        `sites[1].locations[1].technology: no storage driver is registered for "memory"`
      )
      // nothing was created beside the configuration
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(dir)), ["ccat.yaml"])
    }).pipe(Effect.scoped))
})
