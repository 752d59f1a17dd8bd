/**
 * An integrator's transfer adapter in the reference server: registered by name with the Schema of
 * its route options, a configuration naming it is accepted at start, its options are decoded by
 * that schema (a misspelt one refused, named) and reach the factory when a worker builds the
 * adapter for a route; an adapter nobody registered, or a registration under a name a
 * configuration could not write, is refused.
 */
import { TransferAdapter, TransferAdapterRegistry } from "@ccat/core"
import { LocalTransfer } from "@ccat/core/node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Adapters from "../src/lifecycle/Adapters.js"
import type * as Routes from "../src/lifecycle/Routes.js"
import * as Main from "../src/Main.js"
import * as Plugins from "../src/Plugins.js"
import * as ServerConfig from "../src/ServerConfig.js"
import { tempDir } from "./support.js"

/** Options the factory was called with, in order. */
const built: Array<unknown> = []

/** An adapter of an integrator's: a local copy with a "speed" setting. */
const teleport = TransferAdapterRegistry.define({
  name: "teleport",
  options: Schema.Struct({ speed: Schema.Int.pipe(Schema.between(1, 9)), label: Schema.optional(Schema.String) }),
  make: (options) => {
    built.push(options)
    return LocalTransfer.make({ retry: TransferAdapter.noRetry })
  }
})

const configWith = async (options: string) => {
  const dir = await tempDir("ccat-plugins-")
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(
    file,
    `
sites:
  - { name: chile, shortName: cl, locations: [{ name: chile-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/chile-buffer } }] }
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/cologne-buffer } }
      - { name: cologne-archive, type: LONG_TERM_ARCHIVE, technology: disk, driver: { root: ${dir}/cologne-archive } }
routes:
  - { from: chile, to: cologne, adapter: teleport, options: ${options}, maxConcurrentTransfers: 3 }
`
  )
  return { dir, file }
}

const problemsOf = (exit: Exit.Exit<unknown, { readonly message: string }>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.message : ""

describe("an integrator's transfer adapter", () => {
  it.live("is accepted at start with its options, which reach its factory through the route the sync wrote", () =>
    Effect.gen(function* () {
      const { dir, file } = yield* Effect.promise(() => configWith("{ speed: 7, label: warp }"))
      const registries = yield* Main.registriesOf({ adapters: [teleport] })
      const config = yield* ServerConfig.load({ configFile: file, registries })
      const r = config.topology.routes[0]!
      // as a worker reads it from the ops-db: the configured options plus the route's own fields
      const route: Routes.Route = {
        id: "00000000-0000-0000-0000-000000000001",
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
      const adapter = yield* Adapters.adapterOf(route).pipe(Effect.provide(Plugins.layer(registries)))
      assert.strictEqual(adapter.name, "local")
      assert.deepStrictEqual(built.at(-1), { speed: 7, label: "warp" })
      // without the registry, the built-in adapters do not know it
      const unknown = yield* Effect.flip(Adapters.adapterOf(route))
      assert.strictEqual(unknown.reason, "Unsupported")
      yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    }))

  it.live("a misspelt or invalid option, and an adapter nobody registered, are refused at start by name", () =>
    Effect.gen(function* () {
      const { dir, file } = yield* Effect.promise(() => configWith("{ sped: 7, speed: 12 }"))
      const registries = yield* Main.registriesOf({ adapters: [teleport] })
      const message = problemsOf(yield* Effect.exit(ServerConfig.load({ configFile: file, registries })))
      assert.include(message, "routes[0].options.sped: is unexpected")
      assert.include(message, "routes[0].options.speed: Expected a number between 1 and 9, actual 12")
      const plain = problemsOf(yield* Effect.exit(ServerConfig.load({ configFile: file })))
      assert.include(plain, `routes[0].adapter: no transfer adapter is registered as "teleport"; registered: bbcp, local, rsync`)
      const badName = yield* Effect.flip(Main.registriesOf({ adapters: [{ ...teleport, name: "Tele Port" }] }))
      assert.include(badName.message, `"Tele Port" is not an adapter name`)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(dir)), ["ccat.yaml"])
      yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    }))
})
