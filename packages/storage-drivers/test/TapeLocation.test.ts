/**
 * A tape location's options, decoded by the tape driver's own schema as the server's start and its
 * workers decode them: defaults filled in, sizes and durations as people write them, and every
 * problem named by its option.
 */
import { StorageDriverRegistry, Topology } from "@ccat/core"
import { Drivers, TapeLocation } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

const drivers = Either.getOrThrow(StorageDriverRegistry.make(Drivers.builtIn))
const decodeTape = (driver: unknown) => Schema.decodeUnknownSync(TapeLocation.Options, { onExcessProperty: "error" })(driver)

/** A topology with one archive site whose LONG_TERM_ARCHIVE is on tape with the given driver options. */
const withTape = (driver: Record<string, unknown>, type = "LONG_TERM_ARCHIVE") => ({
  sites: [{
    name: "cologne",
    shortName: "col",
    locations: [
      { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: "/data/buffer" } },
      { name: "cologne-tape", type, technology: "tape", driver }
    ]
  }]
})

const problemsOf = (input: unknown): ReadonlyArray<string> => {
  const result = Topology.decode(input, { drivers })
  assert.isTrue(Either.isLeft(result), "the configuration should have been rejected")
  return Either.isLeft(result) ? result.left.problems : []
}

const at = "sites[0].locations[1].driver"

describe("Topology: tape locations", () => {
  it("accepts a virtual library with sizes and durations written for people, and fills in defaults", () => {
    const result = Topology.decode(
      withTape({
        root: "/data/tape",
        library: "virtual",
        volumes: 3,
        volumeBytes: "64 MiB",
        drives: 2,
        mountLatency: "2 seconds",
        seekLatency: 15
      }),
      { drivers }
    )
    assert.isTrue(Either.isRight(result), Either.isLeft(result) ? result.left.message : "")
    const driver = Either.getOrThrow(result).sites[0].locations[1].driver
    const tape = decodeTape(driver)
    assert.deepStrictEqual(tape, {
      root: "/data/tape",
      library: "virtual",
      volumes: 3,
      volumeBytes: 64 * 1024 ** 2,
      drives: 2,
      mountLatency: 2000,
      seekLatency: 15,
      keepOnline: true
    })
    assert.deepStrictEqual(decodeTape({ root: "/t", library: "virtual" }), {
      root: "/t",
      library: "virtual",
      volumes: 4,
      volumeBytes: 1024 ** 3,
      drives: 1,
      mountLatency: 0,
      seekLatency: 0,
      keepOnline: true
    })
  })

  it("accepts an mtx library with its devices, labels and block size", () => {
    const tape = decodeTape({
      root: "/data/tape",
      library: "mtx",
      changer: "/dev/sg3",
      drives: ["/dev/nst0", "/dev/nst1"],
      labels: ["CCAT01L8", "CCAT02L8"],
      volumeBytes: "12 TB",
      blockSize: "256 KiB",
      mtx: "/usr/sbin/mtx",
      keepOnline: false
    })
    assert.deepStrictEqual(tape, {
      root: "/data/tape",
      library: "mtx",
      changer: "/dev/sg3",
      drives: ["/dev/nst0", "/dev/nst1"],
      labels: ["CCAT01L8", "CCAT02L8"],
      volumeBytes: 12e12,
      blockSize: 256 * 1024,
      mtx: "/usr/sbin/mtx",
      keepOnline: false
    })
  })

  it("refuses a tape location without a library, naming the option and the choices", () => {
    const problems = problemsOf(withTape({ root: "/data/tape" }))
    assert.deepStrictEqual(problems, [
      `${at}.library: must be "virtual" (volumes as files in a folder) or "mtx" (a real changer and drives), got nothing`
    ])
    assert.include(problemsOf(withTape({ root: "/data/tape", library: "ibm" }))[0], `got "ibm"`)
  })

  it("refuses bad virtual options all at once, each naming its option, and a misspelt one", () => {
    const problems = problemsOf(withTape({
      root: "/data/tape",
      library: "virtual",
      volumes: 0,
      volumeBytes: "lots",
      drives: 1.5,
      mountLatency: "soon",
      seekLatncy: "1 seconds",
      keepOnline: "yes"
    }))
    const about = (option: string) => problems.find((p) => p.startsWith(`${at}.${option}:`))
    assert.isDefined(about("volumes"), problems.join("\n"))
    assert.include(about("volumeBytes"), "not a size")
    assert.isDefined(about("drives"), problems.join("\n"))
    assert.include(about("mountLatency"), "not a duration")
    assert.include(about("seekLatncy"), "is unexpected")
    assert.isDefined(about("keepOnline"), problems.join("\n"))
    assert.strictEqual(problems.length, 6, problems.join("\n"))
  })

  it("refuses an mtx library without a changer or drives, with a drive listed twice, or a block size out of range", () => {
    const missing = problemsOf(withTape({ root: "/data/tape", library: "mtx" }))
    assert.isTrue(missing.some((p) => p.startsWith(`${at}.changer:`)), missing.join("\n"))
    assert.isTrue(missing.some((p) => p.startsWith(`${at}.drives:`)), missing.join("\n"))
    const bad = problemsOf(withTape({
      root: "/data/tape",
      library: "mtx",
      changer: "/dev/sg3",
      drives: ["/dev/nst0", "/dev/nst0"],
      blockSize: 100,
      volumes: 4
    }))
    assert.isTrue(bad.some((p) => p.startsWith(`${at}.drives:`) && p.includes("listed twice")), bad.join("\n"))
    assert.isTrue(bad.some((p) => p.startsWith(`${at}.blockSize:`) && p.includes("512 bytes to 16 MiB")), bad.join("\n"))
    // volumes belong to the virtual library; a real one counts the cartridges in its changer
    assert.isTrue(bad.some((p) => p.startsWith(`${at}.volumes:`) && p.includes("is unexpected")), bad.join("\n"))
    const empty = problemsOf(withTape({ root: "/data/tape", library: "mtx", changer: "/dev/sg3", drives: [] }))
    assert.isTrue(empty.some((p) => p.startsWith(`${at}.drives:`)), empty.join("\n"))
  })

  it("names a missing root once, in the words every location uses", () => {
    assert.deepStrictEqual(problemsOf(withTape({ library: "virtual" })), [`${at}.root: a tape location needs a root folder`])
  })

  it("refuses tape anywhere but at a LONG_TERM_ARCHIVE", () => {
    for (const type of ["SOURCE", "BUFFER", "PROCESSING"]) {
      const problems = problemsOf(withTape({ root: "/data/tape", library: "virtual" }, type))
      assert.deepStrictEqual(problems, [
        `sites[0].locations[1].technology: a ${type} location cannot be on tape; tape serves LONG_TERM_ARCHIVE locations`
      ])
    }
  })
})
