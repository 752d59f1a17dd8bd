/**
 * Benchmark: filing throughput through the API, beside the database's own ceiling. Files
 * registered per second when instruments file observations of 10,000 files each (one `POST
 * /api/v1/observations` per observation, its files in the same request, an `Idempotency-Key` on
 * each as `@ccat/client` sends) against the real server on a real PostgreSQL, with bearer
 * authentication, validation, the transaction, the creation events and the JSON answer of every
 * stored file.
 *
 *   npx tsx bench/filing.ts                                  # embedded PostgreSQL
 *   BENCH_FILINGS=8 BENCH_FILES=10000 npx tsx bench/filing.ts
 *   DATABASE_URL=postgres://... npx tsx bench/filing.ts      # a real server (a scratch database!)
 *
 * The clients are separate processes (instruments are other machines; here they share the two
 * cores) that send prepared bodies with `fetch` and read each answer whole, so the figure is
 * the server's. Side by side, on the same database in the same run:
 *   api x1, api x4       one client, then four at once, each filing BENCH_FILINGS observations
 *   api-repeat x4        the same filings again (new keys): idempotent repeats, answered as stored
 *   copy x1, copy x4     the ceiling: the same rows (an observation, its files, their creation
 *                        events) written by bare `COPY ... FROM STDIN` into the same tables, one
 *                        transaction per observation, on one and on four connections
 * It prints each variant's files per second and the ratio api / copy at the same concurrency.
 */
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
// The fixtures module alone: the test kit's index also loads vitest, which only runs under vitest.
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { createServer } from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import { Readable } from "node:stream"
import pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { Topology } from "@ccat/core"
import * as Tokens from "../packages/server/src/auth/Tokens.js"
import * as HttpServerLive from "../packages/server/src/HttpServer.js"
import { ServerConfig } from "../packages/server/src/ServerConfig.js"

const filings = Number(process.env.BENCH_FILINGS ?? 6)
const filesPerFiling = Number(process.env.BENCH_FILES ?? 10_000)
const externalUrl = process.env.DATABASE_URL

const command = [
  ...["BENCH_FILINGS", "BENCH_FILES"].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`),
  ...(externalUrl ? ["DATABASE_URL=..."] : []),
  "npx tsx bench/filing.ts"
].join(" ")

interface World {
  readonly obsUnitId: string
  readonly source: string
  readonly sourceId: string
  readonly modules: ReadonlyArray<{ readonly id: string; readonly name: string }>
}

/** One observation's filing, as an instrument sends it. */
const filing = (world: World, tag: string) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnitId,
  startAt: "2026-05-01T00:00:00.000Z",
  endAt: "2026-05-01T00:00:30.000Z",
  sourceLocation: world.source,
  metadata: { bench: tag },
  files: Array.from({ length: filesPerFiling }, (_, i) => ({
    id: randomUUID(),
    module: world.modules[i % 2].name,
    relativePath: `bench/${tag}/detector-${String(i).padStart(5, "0")}.fits`,
    sizeBytes: 16_777_216 + i,
    checksum: `sha256:${randomBytes(32).toString("hex")}`
  }))
})

/**
 * A client process: prepares its bodies, says "ready", waits for "go", files them one after
 * another and prints each filing's seconds. It only uses `fetch`, so it runs as plain JavaScript.
 */
const clientScript = String.raw`
const { baseUrl, token, bodies } = JSON.parse(await (await import("node:fs/promises")).readFile(process.env.BENCH_CLIENT, "utf8"))
const texts = bodies.map((b) => JSON.stringify(b))
process.stdout.write("ready\n")
process.stdin.once("data", async () => {
  const seconds = []
  for (const [i, text] of texts.entries()) {
    const t = performance.now()
    const r = await fetch(baseUrl + "/api/v1/observations", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + token, "idempotency-key": crypto.randomUUID() },
      body: text
    })
    const answer = await r.json()
    if (r.status !== 200 || answer.files.length !== bodies[i].files.length) {
      process.stdout.write(JSON.stringify({ error: r.status + " " + JSON.stringify(answer).slice(0, 500) }) + "\n")
      process.exit(1)
    }
    seconds.push((performance.now() - t) / 1000)
  }
  process.stdout.write(JSON.stringify({ seconds }) + "\n")
  process.exit(0)
})
`

interface Client {
  readonly go: () => void
  readonly done: Promise<ReadonlyArray<number>>
}

const startClient = async (baseUrl: string, token: string, bodies: ReadonlyArray<unknown>) => {
  const file = path.join(os.tmpdir(), `ccat-bench-client-${randomUUID()}.json`)
  await fs.writeFile(file, JSON.stringify({ baseUrl, token, bodies }))
  return new Promise<Client>((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", clientScript], {
      env: { ...process.env, BENCH_CLIENT: file },
      stdio: ["pipe", "pipe", "inherit"]
    })
    let out = ""
    let resolveDone: (s: ReadonlyArray<number>) => void = () => undefined
    let rejectDone: (e: Error) => void = () => undefined
    const done = new Promise<ReadonlyArray<number>>((res, rej) => {
      resolveDone = res
      rejectDone = rej
    })
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      for (let nl = out.indexOf("\n"); nl !== -1; nl = out.indexOf("\n")) {
        const line = out.slice(0, nl)
        out = out.slice(nl + 1)
        if (line === "ready") resolve({ go: () => child.stdin.write("go\n"), done })
        else {
          const message = JSON.parse(line) as { seconds?: Array<number>; error?: string }
          if (message.seconds) resolveDone(message.seconds)
          else rejectDone(new Error(`client: ${message.error}`))
        }
      }
    })
    child.on("exit", (code) => {
      void fs.rm(file, { force: true })
      if (code !== 0) {
        const e = new Error(`client process exited with ${code}`)
        reject(e)
        rejectDone(e)
      }
    })
  })
}

/** Runs the clients' filings at once; the wall time from "go" to the last answer. */
const runClients = (baseUrl: string, token: string, perClient: ReadonlyArray<ReadonlyArray<unknown>>) =>
  Effect.promise(async () => {
    const clients = await Promise.all(perClient.map((bodies) => startClient(baseUrl, token, bodies)))
    const start = performance.now()
    for (const c of clients) c.go()
    const seconds = (await Promise.all(clients.map((c) => c.done))).flat()
    return { wall: (performance.now() - start) / 1000, seconds }
  })

const copyText = (rows: ReadonlyArray<ReadonlyArray<string | number>>) => rows.map((r) => r.join("\t")).join("\n") + "\n"

/** The same rows as a filing writes, prepared as COPY text for the three tables. */
const copyRows = (world: World, f: ReturnType<typeof filing>) => ({
  observation: copyText([[f.id, world.obsUnitId, f.startAt, f.endAt, "completed", JSON.stringify(f.metadata)]]),
  files: copyText(f.files.map((x, i) => [x.id, f.id, world.modules[i % 2].id, x.relativePath, x.sizeBytes, x.checksum, world.sourceId])),
  events: copyText(f.files.map((x) => ["RawDataFile", x.id, "\\N", "filed", "bench"]))
})

const copyInto = async (client: pg.Client, table: string, text: string) => {
  await pipeline(Readable.from([text]), client.query(copyFrom(`copy ${table} from stdin`)))
}

/** Writes the prepared filings by bare COPY on `connections` connections at once; the wall time. */
const runCopy = (url: string, perConnection: ReadonlyArray<ReadonlyArray<ReturnType<typeof copyRows>>>) =>
  Effect.promise(async () => {
    const clients = await Promise.all(perConnection.map(async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      return c
    }))
    const start = performance.now()
    await Promise.all(clients.map(async (c, k) => {
      for (const rows of perConnection[k]) {
        await c.query("begin")
        await copyInto(c, "executed_obs_unit (id, obs_unit_id, start_at, end_at, status, metadata)", rows.observation)
        await copyInto(
          c,
          "raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)",
          rows.files
        )
        await copyInto(c, "event_log (entity_kind, entity_id, from_state, to_state, actor)", rows.events)
        await c.query("commit")
      }
    }))
    const wall = (performance.now() - start) / 1000
    await Promise.all(clients.map((c) => c.end()))
    return wall
  })

const program = (url: string, kind: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const fixtures = yield* Fixtures.world
    const world: World = {
      obsUnitId: fixtures.obsUnit.id,
      source: fixtures.source.name,
      sourceId: fixtures.source.id,
      modules: fixtures.modules
    }
    const account = yield* Tokens.ensureAccount({ name: `bench-${Fixtures.suffix()}`, role: "instrument" })
    yield* Tokens.grantInstrument(account.id, fixtures.instrument.id)
    const { token } = yield* Tokens.issue({ accountId: account.id })
    const baseUrl = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
    const [{ version }] = yield* sql<{ version: string }>`select current_setting('server_version') as version`
    console.log(
      `filing benchmark: filings of ${filesPerFiling} files, ${filings} per client, PostgreSQL ${version} (${kind}), node ${process.version}, ${os.cpus().length} CPUs, load ${
        os.loadavg().map((l) => l.toFixed(1)).join(" ")
      }`
    )

    const batch = (clients: number, tag: string) =>
      Array.from({ length: clients }, (_, c) => Array.from({ length: filings }, (_, n) => filing(world, `${tag}-${c}-${n}`)))
    // Warm up the server, the connection pool and the query plans.
    yield* runClients(baseUrl, token, [[filing(world, "warm-0"), filing(world, "warm-1")]])

    const one = batch(1, "one")
    const four = batch(4, "four")
    const api1 = yield* runClients(baseUrl, token, one)
    const api4 = yield* runClients(baseUrl, token, four)
    const repeat4 = yield* runClients(baseUrl, token, four)
    const copy1 = yield* runCopy(url, batch(1, "copy-one").map((bodies) => bodies.map((f) => copyRows(world, f))))
    const copy4 = yield* runCopy(url, batch(4, "copy-four").map((bodies) => bodies.map((f) => copyRows(world, f))))

    const rate = (clients: number, wall: number) => Math.round((clients * filings * filesPerFiling) / wall)
    const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const rows: Array<[string, number, number, string]> = [
      ["api x1", api1.wall, rate(1, api1.wall), `${(median(api1.seconds) * 1000).toFixed(0)} ms`],
      ["api x4", api4.wall, rate(4, api4.wall), `${(median(api4.seconds) * 1000).toFixed(0)} ms`],
      ["api-repeat x4 (idempotent)", repeat4.wall, rate(4, repeat4.wall), `${(median(repeat4.seconds) * 1000).toFixed(0)} ms`],
      ["copy x1 (ceiling)", copy1, rate(1, copy1), ""],
      ["copy x4 (ceiling)", copy4, rate(4, copy4), ""]
    ]
    console.log("")
    console.log(`| variant | time | files/s | median filing of ${filesPerFiling} |`)
    console.log("|---|---|---|---|")
    for (const [name, wall, r, m] of rows) console.log(`| ${name} | ${wall.toFixed(2)} s | ${r} | ${m} |`)
    console.log("")
    console.log(
      `filing through the API: ${rate(1, api1.wall)} files/s with 1 client (${(copy1 / api1.wall).toFixed(2)} of COPY's ${
        rate(1, copy1)
      }), ` +
        `${rate(4, api4.wall)} files/s with 4 clients (${(copy4 / api4.wall).toFixed(2)} of COPY's ${rate(4, copy4)})`
    )
    console.log(`command: ${command}`)
  })

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-filing-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  let url = externalUrl
  if (url === undefined) {
    // The embedded server, started here so the COPY connections can reach the same database.
    const db = yield* EmbeddedDatabase.start({ dataDir: path.join(dir, "postgres") })
    yield* Effect.promise(async () => {
      const admin = new pg.Client({ connectionString: Redacted.value(db.adminUrl) })
      await admin.connect()
      await admin.query("create database ccat_bench")
      await admin.end()
    })
    url = Redacted.value(db.urlFor("ccat_bench"))
  }
  const databaseUrl = Redacted.make(url)
  const server = HttpServerLive.layer.pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
    Layer.provideMerge(
      Layer.succeed(ServerConfig, {
        configFile: undefined,
        host: "127.0.0.1",
        port: 0,
        dataDir: dir,
        databaseUrl,
        topology: Topology.demo(dir)
      })
    ),
    Layer.provideMerge(OpsDb.layer({ databaseUrl, dataDir: dir }))
  )
  yield* program(url, externalUrl ? "external" : "embedded").pipe(Effect.provide(server))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main as Effect.Effect<void, unknown>).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
