/**
 * The disk and S3 drivers' location options, as a configuration writes them: each documented
 * option (docs/configuration.md, docs/lifecycle.md; examples/config/ccat.yaml is checked whole by
 * examples/config) decodes by the
 * driver's own schema and reaches the driver's options; a misspelt or invalid one, a secret, or
 * half a pair of credential variables is refused, named, before anything is built.
 */
import { StorageDriverRegistry, Topology } from "@ccat/core"
import { DiskLocation, Drivers, S3Location } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

const drivers = Either.getOrThrow(StorageDriverRegistry.make(Drivers.builtIn))
const strict = { onExcessProperty: "error" } as const

/** Problems of one location with the given technology and driver options, as the start reports them. */
const problemsOf = (technology: string, driver: Record<string, unknown>, type = "LONG_TERM_ARCHIVE") => {
  const result = Topology.decode(
    { sites: [{ name: "cologne", shortName: "col", locations: [{ name: "loc", type, technology, driver }] }] },
    { drivers }
  )
  return Either.isLeft(result) ? result.left.problems : []
}

describe("disk and S3 location options", () => {
  it("every S3 option reaches the driver; credentials come from the variables the options name", () =>
    Effect.gen(function* () {
      process.env.CCAT_TEST_S3_ID = "AKIATEST"
      process.env.CCAT_TEST_S3_SECRET = "not-in-the-ops-db"
      const written = {
        bucket: "ccat",
        prefix: "archive/",
        endpoint: "http://127.0.0.1:7480",
        region: "eu-central-1",
        forcePathStyle: false,
        partSize: "32 MiB",
        concurrency: 8,
        contentMd5: false,
        createBucket: true,
        tagChecksums: false,
        accessKeyIdEnv: "CCAT_TEST_S3_ID",
        secretAccessKeyEnv: "CCAT_TEST_S3_SECRET"
      }
      assert.deepStrictEqual(problemsOf("s3", written), [])
      const options = yield* S3Location.toOptions(Schema.decodeUnknownSync(S3Location.Options, strict)(written), "s3:loc")
      assert.deepStrictEqual(options, {
        bucket: "ccat",
        name: "s3:loc",
        prefix: "archive/",
        endpoint: "http://127.0.0.1:7480",
        region: "eu-central-1",
        credentials: { accessKeyId: "AKIATEST", secretAccessKey: "not-in-the-ops-db" },
        forcePathStyle: false,
        partSize: 32 * 1024 ** 2,
        concurrency: 8,
        contentMd5: false,
        createBucket: true,
        tagChecksums: false
      })
      // a variable that is not set is named when the storage is built
      delete process.env.CCAT_TEST_S3_SECRET
      const exit = yield* Effect.exit(S3Location.toOptions(Schema.decodeUnknownSync(S3Location.Options, strict)(written), "s3:loc"))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.message : ""), "CCAT_TEST_S3_SECRET")
    }))

  it("refuses a missing bucket, a misspelt option, parts S3 refuses, half a credential pair and secrets, each named", () => {
    const at = "sites[0].locations[0]"
    assert.deepStrictEqual(problemsOf("s3", { prefix: "a/" }), [`${at}.driver.bucket: an s3 location needs a bucket`])
    assert.isTrue(
      problemsOf("s3", { bucket: "b", forcePathstyle: true }).some((p) => p.startsWith(`${at}.driver.forcePathstyle: is unexpected`))
    )
    assert.include(
      problemsOf("s3", { bucket: "b", partSize: "1 MiB" }),
      `${at}.driver.partSize: S3 parts are 5 MiB to 5 GiB, got 1048576 bytes`
    )
    assert.include(
      problemsOf("s3", { bucket: "b", accessKeyIdEnv: "ID" }),
      `${at}.driver.secretAccessKeyEnv: accessKeyIdEnv and secretAccessKeyEnv go together`
    )
    const secrets = problemsOf("s3", { bucket: "b", accessKeyId: "AKIA", secretAccessKey: "s3cr3t" })
    assert.deepStrictEqual(secrets.map((p) => p.split(":")[0]), [`${at}.driver.accessKeyId`, `${at}.driver.secretAccessKey`])
    assert.isFalse(secrets.some((p) => p.includes("AKIA") || p.includes("s3cr3t")))
  })

  it("disk: root, directIo and fsync reach the driver; a relative root, a misspelt option or a non-boolean is refused", () =>
    Effect.gen(function* () {
      const at = "sites[0].locations[0]"
      assert.deepStrictEqual(problemsOf("disk", { root: "/srv/buffer", directIo: false, fsync: false }, "BUFFER"), [])
      assert.deepStrictEqual(
        DiskLocation.toOptions(
          Schema.decodeUnknownSync(DiskLocation.Options, strict)({ root: "/srv/b", directIo: false, fsync: false }),
          "disk:b"
        ),
        {
          root: "/srv/b",
          name: "disk:b",
          directIo: false,
          fsync: false
        }
      )
      assert.deepStrictEqual(problemsOf("disk", {}, "BUFFER"), [`${at}.driver.root: a disk location needs a root folder`])
      assert.deepStrictEqual(problemsOf("disk", { root: "buffer" }, "BUFFER"), [`${at}.driver.root: must be an absolute folder path`])
      assert.isTrue(
        problemsOf("disk", { root: "/srv/b", directio: false }, "BUFFER").some((p) => p.startsWith(`${at}.driver.directio: is unexpected`))
      )
      assert.deepStrictEqual(problemsOf("disk", { root: "/srv/b", directIo: "no" }, "BUFFER"), [
        `${at}.driver.directIo: must be true or false (default true: large durable writes go past the page cache)`
      ])
      // a storage built from written options works, through the same schema
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-disk-location-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const storage = yield* DiskLocation.driver.make(Schema.decodeUnknownSync(DiskLocation.Options, strict)({ root: dir, fsync: false }), {
        id: "x",
        name: "b"
      })
      assert.strictEqual(storage.name, "disk:b")
    }).pipe(Effect.scoped))
})
