/**
 * rsync and local routes' options, from the configuration file to the tool: the start (and
 * `ccat config check`, which loads the configuration the same way) refuses a misspelt or invalid
 * option, naming it, and the rsync options it accepts reach the rsync command that runs a real
 * transfer. (bbcp's are in BbcpRouteOptions.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Adapters from "../src/lifecycle/Adapters.js"
import type * as Routes from "../src/lifecycle/Routes.js"
import * as ServerConfig from "../src/ServerConfig.js"
import { ccat, tempDir } from "./support.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

/** Two sites joined by a route of `adapter` whose options are `options` (a YAML flow mapping). */
const writeConfig = async (adapter: string, options: string) => {
  const dir = await tempDir("ccat-route-config-")
  dirs.push(dir)
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(
    file,
    `
sites:
  - name: chile
    shortName: cl
    locations:
      - { name: chile-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/chile-buffer } }
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/cologne-buffer } }
      - { name: cologne-archive, type: LONG_TERM_ARCHIVE, technology: disk, driver: { root: ${dir}/cologne-archive } }
routes:
  - { from: chile, to: cologne, adapter: ${adapter}, options: ${options} }
`
  )
  return { dir, file }
}

const refusedWith = async (file: string, expected: ReadonlyArray<string>) => {
  const loaded = await Effect.runPromiseExit(ServerConfig.load({ configFile: file }))
  assert.isTrue(Exit.isFailure(loaded))
  const message = Exit.isFailure(loaded) && loaded.cause._tag === "Fail" ? loaded.cause.error.message : String(loaded)
  for (const e of expected) assert.include(message, e)
  const run = ccat(["config", "check", "--config", file])
  assert.strictEqual(await run.exited, 1, run.output())
  for (const e of expected) assert.include(run.output(), e)
}

describe("rsync and local routes' options", () => {
  it("the start refuses misspelt and invalid rsync options, and any option on a local route, each named", async () => {
    const rsync = await writeConfig(
      "rsync",
      "{ host: cologne.example.org, compres: true, ioTimeoutSeconds: 1, remoteRsync: 'rsync; rm -rf /', port: 0 }"
    )
    await refusedWith(rsync.file, [
      "routes[0].options.compres: is unexpected",
      "routes[0].options.ioTimeoutSeconds: must be 5 to 86400 seconds, got 1",
      "routes[0].options.remoteRsync: must be a path or a name on the PATH",
      "routes[0].options.port: must be a port from 1 to 65535, got 0"
    ])
    const local = await writeConfig("local", "{ host: cologne.example.org }")
    await refusedWith(local.file, ["routes[0].options.host: is unexpected"])
  })

  it.live("the rsync options a configuration accepts reach the rsync that moves a file", () =>
    Effect.gen(function* () {
      const { dir, file } = yield* Effect.promise(() => writeConfig("rsync", "{ ioTimeoutSeconds: 45, compress: true }"))
      const config = yield* ServerConfig.load({ configFile: file })
      const r = config.topology.routes[0]!
      const route: Routes.Route = {
        id: "00000000-0000-0000-0000-000000000003",
        fromSite: r.from,
        toSite: r.to,
        viaSite: null,
        nextHop: r.to,
        adapter: r.adapter,
        options: { ...r.options, maxConcurrentTransfers: r.maxConcurrentTransfers },
        priority: r.priority,
        maxConcurrentTransfers: r.maxConcurrentTransfers,
        bandwidthLimit: undefined
      }
      const bytes = randomBytes(200_000)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.join(dir, "chile-buffer"), { recursive: true })
        await fs.writeFile(path.join(dir, "chile-buffer", "b.tar"), bytes)
      })
      const expected = `sha256:${createHash("sha256").update(bytes).digest("hex")}` as never
      const commands: Array<string> = []
      const capture = Logger.make(({ annotations, message }) => {
        const command = HashMap.get(annotations, "command")
        if ((Array.isArray(message) ? message.join(" ") : String(message)) === "rsync command" && command._tag === "Some") {
          commands.push(String(command.value))
        }
      })
      const moved = yield* Effect.flatMap(
        Adapters.adapterOf(route),
        (a) =>
          a.transfer({
            ...Adapters.endpoints(route, path.join(dir, "chile-buffer"), "b.tar", path.join(dir, "cologne-buffer"), "b.tar"),
            kind: "file",
            expected
          })
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)), Logger.withMinimumLogLevel(LogLevel.Debug))
      assert.strictEqual(moved.checksum, expected)
      assert.isTrue(Buffer.compare(yield* Effect.promise(() => fs.readFile(path.join(dir, "cologne-buffer", "b.tar"))), bytes) === 0)
      assert.isAtLeast(commands.length, 1)
      assert.include(commands[0]!.split(" "), "--timeout=45")
      assert.include(commands[0]!.split(" "), "-z")
    }))
})
