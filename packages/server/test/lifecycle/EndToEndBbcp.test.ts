/**
 * The lifecycle with bbcp as the route's adapter, on real components: real PostgreSQL, real disks,
 * the real bbcp pushing Chile's bundles through a real sshd on loopback (host key checked) into
 * Cologne's buffer, tuned by the route's options as a configuration would give them. Files go from
 * filing through packaging, bundling, the transfer, arrival (verified and unpacked) to ARCHIVED,
 * every archived file byte-identical to what the instrument filed.
 *
 * bbcp is not packaged for Debian: without a binary on PATH this file prints NOT RUN and its one
 * test asserts that the binary is indeed absent, so it cannot pass silently where it should run.
 */
import { TransferAdapterRegistry } from "@ccat/core"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Sshd from "../../../../scripts/sshd.js"
import * as Adapters from "../../src/lifecycle/Adapters.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"
import { gnuTar, sha256File } from "./support.js"

const bbcpOnPath = await Effect.runPromise(BbcpTransfer.findBinary("bbcp").pipe(Effect.option))

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0].n))

/** Both sites run every stage, as a worker per site does in production. */
const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

/** Every package completed (ARCHIVED), and there is at least one. */
const allArchived = Effect.zipWith(
  count(`select count(*)::int as n from raw_data_package where status <> 'completed'`),
  count(`select count(*)::int as n from raw_data_package`),
  (open, all) => open === 0 && all > 0
)

/** Short waits so a retry would happen within the test; production defaults are minutes. */
const quickRetries = Layer.succeed(Routes.TransferPolicy, {
  backoffBaseMs: 300,
  backoffCapMs: 1_000,
  breakerCoolDownMs: 2_000,
  maxAttempts: 6
})

/** Every file and folder below `root`, relative, so a leftover of any name shows. */
const entriesBelow = async (root: string): Promise<Array<string>> => {
  const out: Array<string> = []
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const rel = prefix === "" ? e.name : `${prefix}/${e.name}`
      out.push(rel)
      if (e.isDirectory()) await visit(path.join(dir, e.name), rel)
    }
  }
  await visit(root, "")
  return out
}

if (bbcpOnPath._tag === "Some") {
  const binary = bbcpOnPath.value
  console.log(`[bbcp] lifecycle over bbcp: RUN against ${binary}`)
  let sshd: Sshd.Sshd | undefined
  let knownHosts = ""
  beforeAll(async () => {
    sshd = await Sshd.start()
    const hostKey = (await fs.readFile(path.join(sshd.dir, "host_ed25519.pub"), "utf8")).trim().split(/\s+/).slice(0, 2).join(" ")
    knownHosts = path.join(sshd.dir, "known_hosts")
    await fs.writeFile(knownHosts, `[${sshd.host}]:${sshd.port} ${hostKey}\n`)
  }, 60_000)
  afterAll(() => sshd?.stop(), 60_000)

  describe("the whole lifecycle over bbcp on real ssh", () => {
    it.scopedLive(
      "files → packaged → bundled → bbcp over ssh (4 streams, a32 in flight) → arrived and verified → ARCHIVED, byte-identical, no staging left",
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const options = {
            host: sshd!.host,
            port: sshd!.port,
            user: sshd!.user,
            identityFile: sshd!.identityFile,
            sshOptions: ["StrictHostKeyChecking=yes", `UserKnownHostsFile=${knownHosts}`, "LogLevel=ERROR"],
            bbcp: binary,
            remoteBbcp: binary,
            streams: 4,
            window: "4 MiB",
            checksum: "a32"
          }
          const topology = topologyIn(dir, {}, [{
            from: "chile",
            to: "cologne",
            adapter: "bbcp",
            options,
            maxConcurrentTransfers: 2,
            bandwidthLimit: "200 MB"
          }])
          // the start's check accepts the route's options as written
          assert.isTrue(Either.isRight(TransferAdapterRegistry.decode(Adapters.builtInRegistry, "bbcp", topology.routes[0]!.options)))
          yield* syncTopology(topology)
          const sql = yield* SqlClient.SqlClient
          const obs = yield* observatory
          const first = yield* fileObservation(topology, obs, [
            { path: "det/a.fits", bytes: 400_000 },
            { path: "det/b.fits", bytes: 700_000 },
            { path: "hk/house.dat", bytes: 3_000, module: 1 }
          ])
          // two files above the bundle size: bundles of their own, sent at once into the same folder
          const second = yield* fileObservation(topology, obs, [{ path: "scan/big.raw", bytes: 5_000_000 }])
          const third = yield* fileObservation(topology, obs, [{ path: "scan/bigger.raw", bytes: 6_000_000 }])
          const filed = [...first.files, ...second.files, ...third.files]

          // the bbcp commands the workers ran, from their debug log
          const commands: Array<string> = []
          const capture = Logger.make(({ annotations, message }) => {
            const text = Array.isArray(message) ? message.join(" ") : String(message)
            const command = HashMap.get(annotations, "command")
            if (text === "bbcp command" && command._tag === "Some") commands.push(String(command.value))
          })
          // debug lines reach the capture only; the console keeps its usual level
          const quiet = Logger.filterLogLevel(Logger.defaultLogger, LogLevel.greaterThanEqual(LogLevel.Info))
          const logs = Layer.mergeAll(
            Logger.replace(Logger.defaultLogger, quiet.pipe(Logger.map(() => undefined))),
            Logger.add(capture),
            Logger.minimumLogLevel(LogLevel.Debug)
          )
          const started = Date.now()
          yield* runUntil(everySite, allArchived, 180_000).pipe(Effect.provide(Layer.mergeAll(policyLayer(topology), quickRetries, logs)))
          console.log(`[bbcp] lifecycle over bbcp: ${filed.length} files ARCHIVED in ${((Date.now() - started) / 1000).toFixed(1)} s`)

          // Every bundle went over bbcp through the sshd, first time, verified at the destination.
          const attempts = yield* sql<
            { adapter: string; status: string; bytesTransferred: number; sizeBytes: number; errorMessage: string | null }
          >`
          select t.adapter, t.status::text as status, t.bytes_transferred, d.size_bytes, t.error_message
          from data_transfer t join data_transfer_package d on d.id = t.data_transfer_package_id`
          assert.isAtLeast(attempts.length, 3)
          for (const a of attempts) {
            assert.strictEqual(a.adapter, "bbcp")
            assert.strictEqual(a.status, "completed", a.errorMessage ?? "")
            assert.strictEqual(Number(a.bytesTransferred), Number(a.sizeBytes))
          }
          // The route's options reached each bbcp, and it pushed through the sshd.
          assert.isAtLeast(commands.length, attempts.length)
          for (const c of commands) {
            const words = c.split(" ")
            const flag = (f: string) => words[words.indexOf(f) + 1]
            assert.strictEqual(words[0], binary)
            assert.strictEqual(flag("-s"), "4")
            assert.strictEqual(flag("-w"), String(4 * 1024 * 1024))
            assert.strictEqual(flag("-E"), "a32")
            // the route's 200 MB/s shared by its 2 transfers
            assert.strictEqual(flag("-x"), "100000000")
            assert.include(c, `-p ${sshd!.port}`)
            assert.match(words[words.length - 1]!, new RegExp(`^${sshd!.user}@${sshd!.host}:.*/\\.ccat-partial/.+\\.bbcp/part$`))
          }

          // Each package has a verified archive copy with its checksum, and holds the instrument's bytes.
          const archived = yield* sql<{ path: string; checksum: string; packageChecksum: string }>`
          select c.path, c.checksum, p.checksum as package_checksum
          from physical_copy c join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
          where l.name = 'cologne-archive' and c.status = 'PRESENT' and c.verified_at is not null`
          assert.strictEqual(archived.length, yield* count(`select count(*)::int as n from raw_data_package`))
          const out = path.join(dir, "unpacked")
          yield* Effect.promise(() => fs.mkdir(out, { recursive: true }))
          for (const a of archived) {
            const tar = path.join(dir, "locations", "cologne-archive", a.path)
            assert.strictEqual(a.checksum, a.packageChecksum)
            assert.strictEqual(yield* Effect.promise(() => sha256File(tar)), a.packageChecksum)
            yield* Effect.promise(() => gnuTar(["-xf", tar, "-C", out]))
          }
          for (const f of filed) assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(out, f.relativePath))), f.checksum)

          // bbcp's staging folders and checkpoints are gone from Cologne's buffer.
          const left = yield* Effect.promise(() => entriesBelow(path.join(dir, "locations", "cologne-buffer")))
          assert.deepStrictEqual(left.filter((e) => /\.ccat-partial|\.bbcp|ckp/.test(e)), [])
        }).pipe(Effect.provide(layer)),
      300_000
    )
  })
} else {
  console.log("[bbcp] lifecycle over bbcp: NOT RUN (no bbcp binary on PATH)")
  describe("the whole lifecycle over bbcp on real ssh", () => {
    it("NOT RUN: no bbcp binary on PATH (put one there to run the lifecycle over bbcp)", () => {
      assert.strictEqual(bbcpOnPath._tag, "None")
    })
  })
}
