/**
 * Benchmark: filing throughput through the API. Files registered per second when an instrument
 * files observations of 1,000 files each (one `POST /api/v1/observations` per observation, the
 * files in the same request) against the real server on a real PostgreSQL, through the client
 * derived from the contract, with bearer authentication, validation, the transaction, the
 * creation events and the JSON answer of every stored file.
 *
 *   npx tsx bench/filing.ts                                    # embedded PostgreSQL, 30 batches
 *   BENCH_BATCHES=100 BENCH_FILES=1000 npx tsx bench/filing.ts
 *   DATABASE_URL=postgres://... npx tsx bench/filing.ts        # a real server (a scratch database!)
 *
 * Side by side, on the same database in the same run:
 *   api          the API as above (each batch a new observation)
 *   api-repeat   the same batches filed again: idempotent repeats, answered with the stored rows
 *   sql          the baseline: the same rows inserted by one bulk `insert ... on conflict do nothing
 *                returning *` per batch on a direct connection (what the database alone costs)
 * It prints each variant's files per second and the ratio api / sql.
 */
import { Api } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
// The fixtures module alone: the test kit's index also loads vitest, which only runs under vitest.
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { randomBytes, randomUUID } from "node:crypto"
import { createServer } from "node:http"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Tokens from "../packages/server/src/auth/Tokens.js"
import * as HttpServerLive from "../packages/server/src/HttpServer.js"
import { ServerConfig } from "../packages/server/src/ServerConfig.js"
import { Topology } from "@ccat/core"

const batches = Number(process.env.BENCH_BATCHES ?? 30)
const filesPerBatch = Number(process.env.BENCH_FILES ?? 1000)
const databaseUrl = process.env.DATABASE_URL ? Redacted.make(process.env.DATABASE_URL) : undefined

const command = [
  ...["BENCH_BATCHES", "BENCH_FILES"].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`),
  ...(databaseUrl ? ["DATABASE_URL=..."] : []),
  "npx tsx bench/filing.ts"
].join(" ")

const batch = (world: Fixtures.World, n: number) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date(Date.UTC(2026, 4, 1, 0, n)),
  endAt: new Date(Date.UTC(2026, 4, 1, 0, n, 30)),
  sourceLocation: world.source.name,
  metadata: { bench: n },
  files: Array.from({ length: filesPerBatch }, (_, i) => ({
    id: randomUUID(),
    module: i % 2 === 0 ? "280GHz" : "350GHz",
    relativePath: `bench/scan-${String(n).padStart(5, "0")}/detector-${String(i).padStart(5, "0")}.fits`,
    sizeBytes: 16_777_216 + i,
    checksum: `sha256:${randomBytes(32).toString("hex")}`
  }))
})

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const world = yield* Fixtures.world
  const account = yield* Tokens.ensureAccount({ name: `bench-${Fixtures.suffix()}`, role: "instrument" })
  yield* Tokens.grantInstrument(account.id, world.instrument.id)
  const { token } = yield* Tokens.issue({ accountId: account.id })
  const baseUrl = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
  const client = yield* HttpApiClient.make(Api.Api, { baseUrl, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(token)) })
  const info = yield* OpsDb.OpsDb
  const [{ version }] = yield* sql<{ version: string }>`select current_setting('server_version') as version`
  console.log(`filing benchmark: ${batches} batches of ${filesPerBatch} files, PostgreSQL ${version} (${info.kind}), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)

  // Warm up the server, the connection pool and the query plans.
  for (let i = 0; i < 2; i++) yield* client.observations.file({ payload: batch(world, 100_000 + i) })

  const requests = Array.from({ length: batches }, (_, n) => batch(world, n))
  let start = process.hrtime.bigint()
  const perBatch: Array<number> = []
  for (const request of requests) {
    const t = process.hrtime.bigint()
    const answer = yield* client.observations.file({ payload: request })
    if (answer.files.length !== filesPerBatch) throw new Error("not every file was filed")
    perBatch.push(seconds(t))
  }
  const api = seconds(start)

  start = process.hrtime.bigint()
  for (const request of requests) yield* client.observations.file({ payload: request })
  const repeat = seconds(start)

  // The baseline: the same kind of rows, straight into the database, one statement per batch.
  const baseline = Array.from({ length: batches }, (_, n) => batch(world, 200_000 + n))
  start = process.hrtime.bigint()
  for (const request of baseline) {
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`insert into executed_obs_unit ${sql.insert({
          id: request.id, obsUnitId: world.obsUnit.id, startAt: request.startAt, endAt: request.endAt,
          status: "completed", metadata: JSON.stringify(request.metadata)
        })}`
        const rows = request.files.map((f, i) => ({
          id: f.id, executedObsUnitId: request.id, instrumentModuleId: world.modules[i % 2].id, relativePath: f.relativePath,
          sizeBytes: f.sizeBytes, checksum: f.checksum, sourceLocationId: world.source.id
        }))
        yield* sql`insert into raw_data_file ${sql.insert(rows)} on conflict do nothing returning *`
      })
    )
  }
  const direct = seconds(start)

  const total = batches * filesPerBatch
  const sorted = [...perBatch].sort((a, b) => a - b)
  const rate = (s: number) => Math.round(total / s)
  console.log("")
  console.log("| variant | time | files/s |")
  console.log("|---|---|---|")
  console.log(`| api | ${api.toFixed(2)} s | ${rate(api)} |`)
  console.log(`| api-repeat (idempotent) | ${repeat.toFixed(2)} s | ${rate(repeat)} |`)
  console.log(`| sql (baseline) | ${direct.toFixed(2)} s | ${rate(direct)} |`)
  console.log("")
  console.log(`per batch of ${filesPerBatch}: median ${(sorted[Math.floor(sorted.length / 2)] * 1000).toFixed(0)} ms, p90 ${(sorted[Math.floor(sorted.length * 0.9)] * 1000).toFixed(0)} ms`)
  console.log(`filing through the API: ${rate(api)} files/s; ratio api / sql = ${(direct / api).toFixed(2)} of the database's own bulk-insert rate`)
  console.log(`command: ${command}`)
})

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-filing-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  const server = HttpServerLive.layer.pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
    Layer.provideMerge(Layer.succeed(ServerConfig, { configFile: undefined, host: "127.0.0.1", port: 0, dataDir: dir, databaseUrl, topology: Topology.demo(dir) })),
    Layer.provideMerge(OpsDb.layer({ databaseUrl, dataDir: dir, database: databaseUrl ? undefined : "ccat_bench" })),
    Layer.provideMerge(FetchHttpClient.layer)
  )
  yield* program.pipe(Effect.provide(server))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
