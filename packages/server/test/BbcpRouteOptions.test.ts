/**
 * A bbcp route's options, from the configuration file to bbcp's command line: the start (and
 * `ccat config check`, which loads the configuration the same way) refuses a misspelt or invalid
 * option, naming it, and the options it accepts reach every bbcp it runs. With a bbcp binary on
 * PATH, a transfer tuned to 4 streams also runs for real.
 */
import { TransferAdapterSuite } from "@ccat/core/testing"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Adapters from "../src/lifecycle/Adapters.js"
import * as Routes from "../src/lifecycle/Routes.js"
import * as ServerConfig from "../src/ServerConfig.js"
import { ccat, tempDir } from "./support.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

/** Two sites joined by a bbcp route whose options are `options` (YAML flow mapping). */
const yaml = (root: string, options: string) => `
sites:
  - name: chile
    shortName: cl
    locations:
      - { name: chile-buffer, type: BUFFER, technology: disk, driver: { root: ${root}/chile-buffer } }
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${root}/cologne-buffer } }
      - { name: cologne-archive, type: LONG_TERM_ARCHIVE, technology: disk, driver: { root: ${root}/cologne-archive } }
routes:
  - from: chile
    to: cologne
    adapter: bbcp
    options: ${options}
    maxConcurrentTransfers: 2
    bandwidthLimit: 40 MB
`

const writeConfig = async (options: string) => {
  const dir = await tempDir("ccat-bbcp-config-")
  dirs.push(dir)
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(file, yaml(dir, options))
  return { dir, file }
}

/** The route as a worker reads it from the ops-db: the configured options plus the limits the sync adds. */
const routeOf = (config: ServerConfig.ServerConfigShape): Routes.Route => {
  const r = config.topology.routes[0]!
  return {
    id: "00000000-0000-0000-0000-000000000001",
    fromSite: r.from,
    toSite: r.to,
    viaSite: null,
    nextHop: r.to,
    adapter: r.adapter,
    options: {
      ...r.options,
      maxConcurrentTransfers: r.maxConcurrentTransfers,
      ...(r.bandwidthLimit === undefined ? {} : { bandwidthLimit: r.bandwidthLimit })
    },
    priority: r.priority,
    maxConcurrentTransfers: r.maxConcurrentTransfers,
    bandwidthLimit: r.bandwidthLimit
  }
}

/** Runs `effect` and returns the bbcp command lines it logged. */
const commandsOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const commands: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      const text = Array.isArray(message) ? message.join(" ") : String(message)
      const command = HashMap.get(annotations, "command")
      if (text === "bbcp command" && command._tag === "Some") commands.push(String(command.value))
    })
    const exit = yield* effect.pipe(
      Effect.exit,
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(LogLevel.Debug)
    )
    return { exit, commands }
  })

const tuned = "{ streams: 4, window: 8 MiB, blockSize: 1 MiB, checksum: a32, ports: '5031:5040', progressSeconds: 5 }"

describe("a bbcp route's options", () => {
  it("the start refuses misspelt and invalid bbcp options, each named with its route, and ccat config check says the same", async () => {
    const { file, dir } = await writeConfig(
      "{ host: transfer.example.org, strems: 4, streams: 0, window: 8M, blockSize: 4 GiB, checksum: sha1, ports: '6000:5000', port: 70000, remoteBbcp: '/opt/bbcp bin/bbcp' }"
    )
    const loaded = await Effect.runPromiseExit(ServerConfig.load({ configFile: file }))
    assert.isTrue(Exit.isFailure(loaded))
    const at = (option: string) => `routes[0].options.${option}:`
    const expected = [
      `${at("strems")} is unexpected`,
      `${at("streams")} bbcp takes 1 to 64 streams, got 0`,
      at("window"),
      `"8M" is not a size`,
      `${at("blockSize")} bbcp takes a block size of 1 KiB to 1 GiB`,
      at("checksum"),
      at("ports"),
      `"6000:5000" is not a port range`,
      `${at("port")} must be a port from 1 to 65535, got 70000`,
      `${at("remoteBbcp")} must be a path or a name on the PATH, without spaces`
    ]
    if (Exit.isFailure(loaded)) {
      const message = String(loaded.cause._tag === "Fail" ? loaded.cause.error.message : loaded.cause)
      for (const e of expected) assert.include(message, e)
    }
    const run = ccat(["config", "check", "--config", file])
    const code = await run.exited
    assert.strictEqual(code, 1, run.output())
    for (const e of expected) assert.include(run.output(), e)
    assert.notInclude(run.output(), "    at ")
    // nothing was started or created beside the file
    assert.deepStrictEqual(await fs.readdir(dir), ["ccat.yaml"])
  })

  it("the options a configuration accepts reach bbcp's command line, with the route's limit shared as -x", async () => {
    const { file, dir } = await writeConfig(`{ bbcp: /nonexistent/bin/bbcp, ${tuned.slice(1)}`)
    const config = await Effect.runPromise(ServerConfig.load({ configFile: file }))
    const route = routeOf(config)
    await fs.mkdir(path.join(dir, "chile-buffer"), { recursive: true })
    await fs.writeFile(path.join(dir, "chile-buffer", "b.tar"), "bundle")
    const { exit, commands } = await Effect.runPromise(
      commandsOf(
        Effect.flatMap(Adapters.adapterOf(route), (a) =>
          a.transfer({
            ...Adapters.endpoints(route, path.join(dir, "chile-buffer"), "b.tar", path.join(dir, "cologne-buffer"), "b.tar"),
            kind: "file",
            bandwidthLimit: Routes.transferShare(route)!
          }))
      )
    )
    // the binary configured does not exist: the transfer fails as such, after logging what it would run
    assert.isTrue(Exit.isFailure(exit))
    if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
      assert.strictEqual((exit.cause.error as { reason: string }).reason, "ToolMissing")
    }
    assert.lengthOf(commands, 1)
    const words = commands[0]!.split(" ")
    const flag = (f: string) => words[words.indexOf(f) + 1]
    assert.strictEqual(words[0], "/nonexistent/bin/bbcp")
    assert.strictEqual(flag("-s"), "4")
    assert.strictEqual(flag("-w"), String(8 * 1024 * 1024))
    assert.strictEqual(flag("-B"), String(1024 * 1024))
    assert.strictEqual(flag("-E"), "a32")
    assert.strictEqual(flag("-Z"), "5031:5040")
    assert.strictEqual(flag("-P"), "5")
    // the route's 40 MB/s shared by its 2 transfers, as the transfer stage asks
    assert.strictEqual(flag("-x"), "20000000")
  })

  it("a route row holding options the start would refuse fails its transfer InvalidRequest, not retryable, naming them", async () => {
    const route: Routes.Route = {
      id: "00000000-0000-0000-0000-000000000002",
      fromSite: "chile",
      toSite: "cologne",
      viaSite: null,
      nextHop: "cologne",
      adapter: "bbcp",
      options: { streams: 99, maxConcurrentTransfers: 2 },
      priority: 0,
      maxConcurrentTransfers: 2,
      bandwidthLimit: undefined
    }
    const exit = await Effect.runPromiseExit(Adapters.adapterOf(route))
    assert.isTrue(Exit.isFailure(exit))
    if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
      assert.strictEqual(exit.cause.error.reason, "InvalidRequest")
      assert.isFalse(exit.cause.error.retryable)
      assert.include(exit.cause.error.message, "streams: bbcp takes 1 to 64 streams, got 99")
    }
  })
})

const bbcpOnPath = await Effect.runPromise(BbcpTransfer.findBinary("bbcp").pipe(Effect.option))

if (bbcpOnPath._tag === "Some") {
  console.log(`[bbcp] tuned route transfer: RUN against ${bbcpOnPath.value}`)
  describe("a bbcp route's options with the real bbcp", () => {
    it.live(
      "a route tuned to 4 streams, an 8 MiB window, 1 MiB blocks and a32 in flight moves and verifies a file",
      () =>
        Effect.gen(function* () {
          const { file, dir } = yield* Effect.promise(() => writeConfig("{ streams: 4, window: 8 MiB, blockSize: 1 MiB, checksum: a32 }"))
          const config = yield* ServerConfig.load({ configFile: file })
          const route = routeOf(config)
          const bytes = 48 * 1024 * 1024
          const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "chile-buffer", "b.tar"), bytes))
          const { exit, commands } = yield* commandsOf(
            Effect.flatMap(
              Adapters.adapterOf(route),
              (a) =>
                a.transfer({
                  ...Adapters.endpoints(route, path.join(dir, "chile-buffer"), "b.tar", path.join(dir, "cologne-buffer"), "b.tar"),
                  kind: "file",
                  expected: sum
                })
            )
          )
          assert.isTrue(Exit.isSuccess(exit), String(exit))
          if (Exit.isSuccess(exit)) {
            assert.strictEqual(exit.value.checksum, sum)
            assert.strictEqual(exit.value.bytes, bytes)
          }
          assert.include(commands[0], " -s 4 ")
          assert.include(commands[0], " -E a32 ")
          // the copy is in place and nothing else is left beside it
          assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(dir, "cologne-buffer"))), ["b.tar"])
        }),
      60_000
    )
  })
} else {
  console.log("[bbcp] tuned route transfer: NOT RUN (no bbcp binary on PATH)")
  describe("a bbcp route's options with the real bbcp", () => {
    it("NOT RUN: no bbcp binary on PATH (put one there to run a tuned transfer against it)", () => {
      assert.strictEqual(bbcpOnPath._tag, "None")
    })
  })
}
