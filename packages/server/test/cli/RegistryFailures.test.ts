/**
 * A server assembled with a storage driver or transfer adapter whose name a configuration could
 * not write fails at start before anything runs; `ccat` reports that as one line on stderr with
 * exit code 1, never a stack trace, through the same handler as cli.ts.
 */
import { StorageDriverRegistry, TransferAdapter, TransferAdapterRegistry } from "@ccat/core"
import { LocalTransfer } from "@ccat/core/node"
import { Drivers } from "@ccat/storage-drivers"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { afterEach, describe, expect, it, vi } from "vitest"
import * as RegistryFailures from "../../src/cli/RegistryFailures.js"
import * as Main from "../../src/Main.js"

const badDriver = StorageDriverRegistry.define({ ...Drivers.builtIn[0]!, technology: "My Disk" })
const badAdapter = TransferAdapterRegistry.define({
  name: "Tele_port",
  options: Schema.Struct({}),
  make: () => LocalTransfer.make({ retry: TransferAdapter.noRetry })
})

/** What the command printed on stderr and the exit code it left, for a server start with these plugins. */
const start = async (plugins: Parameters<typeof Main.serve>[0]) => {
  const errors = vi.spyOn(console, "error").mockImplementation(() => {})
  process.exitCode = undefined
  await Effect.runPromise(RegistryFailures.report(Main.serve(plugins)).pipe(Effect.timeout("20 seconds")))
  const code = process.exitCode
  const printed = errors.mock.calls.map((c) => c.map(String).join(" "))
  return { code, printed }
}

afterEach(() => {
  vi.restoreAllMocks()
  process.exitCode = undefined
})

describe("a registry that cannot be built at start", () => {
  it("a storage driver's technology name is reported as one line, exit code 1", async () => {
    const { code, printed } = await start({ drivers: [badDriver] })
    expect(code).toBe(1)
    expect(printed).toEqual([
      `ccat: storage drivers cannot be registered: "My Disk" is not a technology name (a-z, 0-9 and -, starting with a letter)`
    ])
  })

  it("a transfer adapter's name is reported as one line, exit code 1", async () => {
    const { code, printed } = await start({ adapters: [badAdapter] })
    expect(code).toBe(1)
    expect(printed).toHaveLength(1)
    expect(printed[0]).toMatch(/^ccat: transfer adapters cannot be registered: "Tele_port" is not an adapter name/)
    expect(printed[0]).not.toContain("\n")
  })

  it("any other failure passes through untouched", async () => {
    const other = await Effect.runPromise(Effect.flip(RegistryFailures.report(Effect.fail({ _tag: "ConfigLoadError" as const }))))
    expect(other._tag).toBe("ConfigLoadError")
  })
})
