/**
 * `ccat demo`: the whole lifecycle on one machine, to see it and to measure it. It starts the
 * reference server (API and every site's workers), makes an instrument team and a scientist,
 * writes synthetic observations of several instruments and modules (many small files and a few
 * large ones) at the SOURCE, files them through @ccat/client exactly as an instrument would,
 * and shows them flowing to ARCHIVED, staged on request, and cleaned up.
 */
import { Accounts, Ids, Repositories, Topology } from "@ccat/core"
import { createClient } from "@ccat/client"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as AccessEvents from "./auth/AccessEvents.js"
import * as HttpServerLive from "./HttpServer.js"
import * as Main from "./Main.js"
import * as Logging from "./observability/Logging.js"
import { load, ServerConfig, type LoadOptions } from "./ServerConfig.js"
import * as TopologySync from "./TopologySync.js"

/** How much synthetic data the demo files. */
export interface DemoOptions extends LoadOptions {
  /** Observations to file (spread over the instruments). */
  readonly observations: number
  /** Small files per observation (1 to 64 KiB each). */
  readonly smallFiles: number
  /** Large files in the whole demo. */
  readonly largeFiles: number
  /** Bytes of each large file. */
  readonly largeBytes: number
  /** Keep serving after the demo finished. */
  readonly keepRunning: boolean
  /** How long the demo's staged data is kept before cleanup removes it, in milliseconds. */
  readonly stagingLifetimeMs: number
}

/** Why the demo stopped short. */
export class DemoError extends Data.TaggedError("DemoError")<{ readonly reason: string }> {
  override get message(): string {
    return `demo: ${this.reason}`
  }
}

const instruments = [
  { name: "Prime-Cam", modules: ["280GHz", "350GHz", "850GHz"] },
  { name: "CHAI", modules: ["LFA", "HFA"] }
] as const

/** Writes `bytes` random bytes to a file, streamed in 1 MiB pieces, and returns its checksum. */
const writeFile = async (file: string, bytes: number): Promise<string> => {
  await fs.mkdir(path.dirname(file), { recursive: true })
  const handle = await fs.open(file, "w")
  const hash = createHash("sha256")
  try {
    for (let left = bytes; left > 0;) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024))
      hash.update(chunk)
      await handle.write(chunk)
      left -= chunk.length
    }
  } finally {
    await handle.close()
  }
  return `sha256:${hash.digest("hex")}`
}

/** The observatory, the instrument team and the scientist the demo files and stages as. */
const setUp = Effect.gen(function* () {
  const s = randomBytes(3).toString("hex")
  const observatory = yield* Repositories.observatories.insert({ name: `CCAT demo ${s}`, description: "the demo's observatory" })
  const telescope = yield* Repositories.telescopes.insert({
    observatoryId: observatory.id,
    name: "FYST",
    description: "Fred Young Submillimeter Telescope"
  })
  const program = yield* Repositories.observingPrograms.insert({ name: `demo-${s}`, title: "Demo survey" })
  const team = yield* Repositories.accounts.insert({
    name: Ids.ShortName.make(`demo-daq-${s}`),
    displayName: "Demo data acquisition",
    email: null,
    role: "instrument",
    active: true
  })
  const scientist = yield* Repositories.accounts.insert({
    name: Ids.ShortName.make(`demo-sci-${s}`),
    displayName: "Demo scientist",
    email: null,
    role: "scientist",
    active: true
  })
  yield* Repositories.programAccess.insert({ accountId: scientist.id, observingProgramId: program.id })
  // The demo's access is on record like any other: who set it up, and when.
  yield* AccessEvents.record({
    kind: "Account",
    id: team.id,
    from: null,
    to: "active",
    actor: "demo",
    details: { name: team.name, role: team.role }
  })
  yield* AccessEvents.record({
    kind: "Account",
    id: scientist.id,
    from: null,
    to: "active",
    actor: "demo",
    details: { name: scientist.name, role: scientist.role }
  })
  yield* AccessEvents.record({
    kind: "Account",
    id: scientist.id,
    from: null,
    to: "granted",
    actor: "demo",
    details: { programId: program.id }
  })
  const made: Array<{ name: string; modules: ReadonlyArray<string>; obsUnitId: string }> = []
  for (const i of instruments) {
    const instrument = yield* Repositories.instruments.insert({ telescopeId: telescope.id, name: `${i.name} ${s}`, description: "" })
    for (const m of i.modules) yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: m, description: "" })
    yield* Repositories.instrumentAccess.insert({ accountId: team.id, instrumentId: instrument.id })
    yield* AccessEvents.record({
      kind: "Account",
      id: team.id,
      from: null,
      to: "granted",
      actor: "demo",
      details: { instrumentId: instrument.id }
    })
    const obsUnit = yield* Repositories.obsUnits.insert({
      observingProgramId: program.id,
      instrumentId: instrument.id,
      name: `${i.name}-deep56`,
      target: "Deep56",
      plannedDurationSeconds: 600,
      configuration: {}
    })
    made.push({ name: i.name, modules: i.modules, obsUnitId: obsUnit.id })
  }
  const token = (accountId: Ids.AccountId, label: string) =>
    Effect.gen(function* () {
      const t = yield* Accounts.generateToken
      const row = yield* Repositories.apiTokens.insert({
        accountId,
        label,
        prefix: t.prefix,
        secretSha256: t.secretSha256,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null
      } as never)
      yield* AccessEvents.record({
        kind: "ApiToken",
        id: row.id,
        from: null,
        to: "active",
        actor: "demo",
        details: { prefix: t.prefix, label }
      })
      return t.token
    })
  return {
    program,
    instruments: made,
    instrumentToken: yield* token(team.id, "demo instrument"),
    scientistToken: yield* token(scientist.id, "demo scientist")
  }
})

interface Progress {
  readonly filed: number
  readonly packaged: number
  readonly waiting: number
  readonly transferring: number
  readonly archived: number
  readonly failed: number
  readonly bundlesMoving: number
  readonly staged: number
  readonly deleted: number
  /** Live copies outside the archive: what cleanup still has to delete. */
  readonly outsideArchive: number
}

const progress = (program: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Progress>`
      with files as (
        select f.* from raw_data_file f join executed_obs_unit e on e.id = f.executed_obs_unit_id
        join obs_unit o on o.id = e.obs_unit_id where o.observing_program_id = ${program}),
      packages as (select distinct p.* from raw_data_package p join files f on f.raw_data_package_id = p.id)
      select (select count(*)::int from files) as filed,
        (select count(*)::int from files where state = 'packaged') as packaged,
        (select count(*)::int from packages where status in ('pending', 'scheduled')) as waiting,
        (select count(*)::int from packages where status = 'in_progress') as transferring,
        (select count(*)::int from packages where status = 'completed') as archived,
        (select count(*)::int from packages where status = 'failed') as failed,
        (select count(*)::int from data_transfer_package where status in ('scheduled', 'in_progress')) as bundles_moving,
        (select count(*)::int from physical_copy where status = 'STAGED') as staged,
        (select count(*)::int from physical_copy where status = 'DELETED') as deleted,
        (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id
          where l.type <> 'LONG_TERM_ARCHIVE' and c.status <> 'DELETED') as outside_archive`).pipe(Effect.map((rows) => rows[0]))

const line = (p: Progress, elapsed: number) =>
  `[${(elapsed / 1000).toFixed(1).padStart(6)} s] files filed ${p.filed}, packaged ${p.packaged} | packages waiting ${p.waiting}, ` +
  `transferring ${p.transferring}, archived ${p.archived}, failed ${p.failed} | bundles moving ${p.bundlesMoving} | ` +
  `staged copies ${p.staged} | deleted copies ${p.deleted}, left outside the archive ${p.outsideArchive}`

/** Polls `check` every second, printing progress, until it holds; fails after `timeoutMs`. */
const watch = (program: string, started: number, what: string, check: (p: Progress) => boolean, timeoutMs: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    let last = ""
    while (true) {
      const p = yield* progress(program)
      const text = line(p, Date.now() - started)
      if (text.slice(11) !== last) yield* Console.log(text)
      last = text.slice(11)
      if (check(p)) return p
      if (Date.now() > deadline) {
        return yield* Effect.fail(new DemoError({ reason: `the demo did not reach "${what}" within ${timeoutMs / 1000} s` }))
      }
      yield* Effect.sleep("1 second")
    }
  })

/** Files the synthetic observations through @ccat/client, as an instrument's DAQ would. */
const fileAll = (options: DemoOptions, baseUrl: string, dataDir: string, sourceRoot: string, setup: Effect.Effect.Success<typeof setUp>) =>
  Effect.tryPromise({
    catch: (e) => new DemoError({ reason: `filing failed: ${e instanceof Error ? e.message : String(e)}` }),
    try: async () => {
      const ccat = await createClient({ baseUrl, token: setup.instrumentToken, outboxDir: path.join(dataDir, "demo-outbox") })
      let largeLeft = options.largeFiles
      let files = 0
      let bytes = 0
      try {
        for (let o = 0; o < options.observations; o++) {
          const instrument = setup.instruments[o % setup.instruments.length]
          const id = randomUUID()
          const startAt = new Date(Date.now() - 600_000)
          await ccat.fileObservation({ id, obsUnitId: instrument.obsUnitId, startAt, metadata: { demo: true, scan: o } })
          const batch: Array<{ id: string; module: string; relativePath: string; sizeBytes: number; checksum: string }> = []
          const count = options.smallFiles + (largeLeft > 0 ? 1 : 0)
          for (let f = 0; f < count; f++) {
            const large = f === options.smallFiles
            const module = instrument.modules[f % instrument.modules.length]
            const relativePath = `demo/${id}/${module}/${large ? "timestream" : "chunk"}-${String(f).padStart(4, "0")}.${
              large ? "raw" : "fits"
            }`
            const size = large ? options.largeBytes : 1024 + Math.floor(Math.random() * 63 * 1024)
            const checksum = await writeFile(path.join(sourceRoot, relativePath), size)
            batch.push({ id: randomUUID(), module, relativePath, sizeBytes: size, checksum })
            files++
            bytes += size
          }
          if (largeLeft > 0) largeLeft--
          for (let i = 0; i < batch.length; i += 1000) {
            await ccat.addFiles(id, { sourceLocation: "chile-source", files: batch.slice(i, i + 1000) })
          }
          await ccat.closeObservation(id, { endAt: new Date(), status: "completed" })
        }
        if (!(await ccat.outbox.flush(120_000))) throw new Error("the server did not take the filings within two minutes")
        const dead = await ccat.outbox.deadLetters()
        if (dead.length > 0) {
          throw new Error(`the server refused ${dead.length} filing(s): ${dead.map((d) => JSON.stringify(d.reason)).join("; ")}`)
        }
        return { files, bytes }
      } finally {
        await ccat.close()
      }
    }
  })

/** The demo itself, once the server runs. */
const run = (options: DemoOptions) =>
  Effect.gen(function* () {
    const config = yield* ServerConfig
    const sourceRoot = config.topology.sites.flatMap((s) => s.locations).find((l) => l.type === "SOURCE")?.driver.root
    const processing = config.topology.sites.flatMap((s) => s.locations).find((l) => l.type === "PROCESSING")
    if (typeof sourceRoot !== "string" || processing === undefined) {
      return yield* Effect.fail(
        new DemoError({ reason: "the demo needs a disk SOURCE location and a PROCESSING location (the embedded default has both)" })
      )
    }
    const baseUrl = `http://127.0.0.1:${config.port}`
    // the demo's rows and their events together, as every writer does
    const setup = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(setUp))
    yield* Console.log(
      `demo: filing ${options.observations} observations of ${
        setup.instruments.map((i) => i.name).join(" and ")
      } through @ccat/client at ${baseUrl}`
    )
    const started = Date.now()
    const filed = yield* fileAll(options, baseUrl, config.dataDir, sourceRoot, setup)
    yield* Console.log(
      `demo: filed ${filed.files} files, ${(filed.bytes / 1e6).toFixed(1)} MB, in ${((Date.now() - started) / 1000).toFixed(1)} s`
    )
    const archived = yield* watch(
      setup.program.id,
      started,
      "every package ARCHIVED",
      (p) => p.packaged === p.filed && p.waiting + p.transferring === 0 && p.archived > 0,
      30 * 60_000
    )
    const archivedAfter = Date.now() - started
    yield* Console.log(
      `demo: every package ARCHIVED (${archived.archived} packages, ${archived.failed} failed), ${
        (archivedAfter / 1000).toFixed(1)
      } s after the first filing`
    )

    // A scientist asks for the first observation to be staged, through the API.
    const sci = yield* Effect.promise(() => createClient({ baseUrl, token: setup.scientistToken }))
    const observations = yield* Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<{ id: string }>`select e.id from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
        where o.observing_program_id = ${setup.program.id} order by e.start_at, e.id limit 1`
    )
    const request = yield* Effect.promise(() =>
      sci.api.staging.create({ payload: { location: processing.name, observationIds: [observations[0].id] } } as never)
    ) as Effect.Effect<{ id: string }>
    yield* Console.log(`demo: staging request ${request.id} for observation ${observations[0].id} at ${processing.name}`)
    // What a pipeline does: wait for the request through the client and take the local paths it answers.
    const { paths } = yield* Effect.tryPromise({
      try: () => sci.waitForStaging(request.id, { pollCapMs: 2_000 }),
      catch: (e) => new DemoError({ reason: `staging failed: ${e instanceof Error ? e.message : String(e)}` })
    })
    yield* Console.log(`demo: STAGED ${paths.length} files, e.g.\n${paths.slice(0, 3).map((p) => `  ${p}`).join("\n")}`)
    yield* Effect.promise(() => sci.close())

    yield* watch(
      setup.program.id,
      started,
      "SOURCE, BUFFER and expired PROCESSING copies cleaned up",
      (p) => p.outsideArchive === 0,
      10 * 60_000
    )
    yield* Console.log(
      `demo: done. Filing to last ARCHIVED: ${(archivedAfter / 1000).toFixed(1)} s for ${filed.files} files (${
        (filed.bytes / 1e6).toFixed(1)
      } MB); ` +
        `SOURCE, BUFFER and expired staged copies deleted once archived; the archive keeps every package.`
    )
  })

/** How long the demo lets a partial bundle wait at most (the embedded default waits 30 s). */
const demoBundleMaxWaitMs = 5_000

/** Starts the server with every site's workers and runs the demo against it. */
export const demo = (options: DemoOptions) =>
  Effect.gen(function* () {
    if (!Number.isInteger(options.stagingLifetimeMs) || options.stagingLifetimeMs < 1000) {
      return yield* new DemoError({ reason: `--staging-lifetime must be a whole number of seconds, at least 1` })
    }
    const loaded = yield* load(options)
    // Staged data of the demo expires quickly, so its cleanup can be seen too; a partial bundle
    // leaves within seconds, as the demo's few packages never fill one and waiting shows nothing.
    const config = {
      ...loaded,
      topology: new Topology.Topology({
        ...loaded.topology,
        policy: new Topology.PolicyConfig({
          ...loaded.topology.policy,
          stagingLifetime: options.stagingLifetimeMs,
          bundleMaxWait: Math.min(loaded.topology.policy.bundleMaxWait, demoBundleMaxWaitMs)
        })
      })
    }
    const server = Layer.mergeAll(HttpServerLive.layer, Main.workersLayer(config.topology.sites.map((s) => s.name))).pipe(
      Layer.provideMerge(HttpServerLive.listen),
      Layer.provideMerge(Main.lifecycleLayer(config)),
      Layer.provideMerge(Layer.effectDiscard(Effect.flatMap(ServerConfig, (c) => TopologySync.sync(c.topology)))),
      Layer.provideMerge(Main.opsDbLayer(config)),
      Layer.provideMerge(Layer.succeed(ServerConfig, config))
    )
    return yield* Effect.scoped(
      Effect.gen(function* () {
        yield* Layer.build(server).pipe(Effect.flatMap((ctx) => Effect.provide(run(options), ctx)))
        if (options.keepRunning) {
          yield* Console.log(`demo: the server keeps running at http://127.0.0.1:${config.port}; Ctrl-C stops it`)
          return yield* Effect.never
        }
      })
    )
    // The screen is for the demo's progress: only warnings and errors of the workers show.
  }).pipe(Effect.provide(Logging.layer("pretty", LogLevel.Warning)))
