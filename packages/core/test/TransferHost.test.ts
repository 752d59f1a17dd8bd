/**
 * A remote call returns the whole of what its command printed, up to the limit its caller sets,
 * and fails naming that limit beyond it: a checksum list is never cut. Against a real sshd.
 */
import { Checksum, TransferEndpoint } from "@ccat/core"
import { TransferHost } from "@ccat/core/node"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../../../scripts/sshd.js"

const files = 2000

let sshd: Sshd.Sshd
let dir: string
beforeAll(async () => {
  sshd = await Sshd.start()
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-transfer-host-"))
  // nested folders and names of different lengths, as a bundle's tree has
  for (let i = 0; i < files; i++) {
    const sub = path.join(dir, "tree", `d${i % 16}`)
    await fs.mkdir(sub, { recursive: true })
    await fs.writeFile(path.join(sub, `obs-${String(i).padStart(5, "0")}-${"x".repeat(i % 40)}.fits`), `file ${i}\n`)
  }
})
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true })
  await sshd.stop()
})

const endpoint = (p: string) =>
  TransferEndpoint.ssh({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    sshOptions: sshd.sshOptions,
    path: p
  })

describe("TransferHost over ssh", () => {
  it.live("the checksums of 2,000 files come back whole, equal to the local ones", () =>
    Effect.gen(function* () {
      const tree = path.join(dir, "tree")
      const remote = yield* TransferHost.manifest("test", endpoint(tree), "directory", Checksum.defaultAlgorithm)
      const local = yield* TransferHost.manifest("test", TransferEndpoint.local(tree), "directory", Checksum.defaultAlgorithm)
      assert.strictEqual(Object.keys(remote).length, files)
      assert.deepStrictEqual(remote, local)
      const size = yield* TransferHost.size("test", endpoint(tree), "directory")
      assert.strictEqual(size.files, files)
    }), 60_000)

  it.live(
    "output beyond the caller's limit fails the call, naming the limit, and nothing is parsed from a part",
    () =>
      Effect.gen(function* () {
        const tree = path.join(dir, "tree")
        const failed = yield* TransferHost.manifest("test", endpoint(tree), "directory", Checksum.defaultAlgorithm, "ssh", {
          maxOutput: 64 * 1024
        }).pipe(Effect.flip)
        assert.strictEqual(failed.reason, "InvalidRequest")
        assert.isFalse(failed.retryable)
        assert.include(failed.detail, "more than 65536 characters")
        // exactly at the limit is whole; one character over is refused
        const exact = yield* TransferHost.remote("test", endpoint("/"), "printf 'abcd'", "ssh", { maxOutput: 4 })
        assert.strictEqual(exact, "abcd")
        const over = yield* TransferHost.remote("test", endpoint("/"), "printf 'abcde'", "ssh", { maxOutput: 4 }).pipe(Effect.flip)
        assert.strictEqual(over.reason, "InvalidRequest")
        const bad = yield* TransferHost.remote("test", endpoint("/"), "true", "ssh", { maxOutput: -1 }).pipe(Effect.flip)
        assert.include(bad.detail, "maxOutput")
      }),
    60_000
  )
})
