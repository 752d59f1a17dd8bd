import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { StorageDriverRegistry, StorageError, Topology, TransferAdapterRegistry } from "@ccat/core"

/** Drivers and an adapter of this test's own, with the shapes of the real ones' options, to check the registries' rules in core. */
const unbuilt = () => Effect.fail(new StorageError.StorageError({ reason: "Unsupported", driver: "test", method: "make" }))
const registries: Topology.Registries = {
  drivers: Either.getOrThrow(StorageDriverRegistry.make([
    StorageDriverRegistry.define({
      technology: "disk",
      options: Schema.Struct({
        root: Schema.propertySignature(Schema.String).annotations({ missingMessage: () => "a disk location needs a root folder" }),
        directIo: Schema.optional(Schema.Boolean)
      }),
      make: unbuilt,
      root: (o) => o.root,
      pathAccess: true
    }),
    StorageDriverRegistry.define({
      technology: "s3",
      options: Schema.Struct({
        bucket: Schema.propertySignature(Schema.String).annotations({ missingMessage: () => "an s3 location needs a bucket" }),
        prefix: Schema.optional(Schema.String),
        endpoint: Schema.optional(Schema.String)
      }),
      make: unbuilt
    }),
    StorageDriverRegistry.define({
      technology: "tape",
      options: Schema.Struct({ root: Schema.String }),
      make: unbuilt,
      root: (o) => o.root,
      locationTypes: ["LONG_TERM_ARCHIVE"]
    })
  ])),
  adapters: Either.getOrThrow(TransferAdapterRegistry.make([
    TransferAdapterRegistry.define({
      name: "local",
      options: Schema.Record({ key: Schema.String, value: Schema.Never }),
      make: () => {
        throw new Error("not built in this test")
      }
    })
  ]))
}

const problemsOf = (input: unknown): ReadonlyArray<string> => {
  const result = Topology.decode(input, registries)
  assert.isTrue(Either.isLeft(result), "the configuration should have been rejected")
  return Either.isLeft(result) ? result.left.problems : []
}

const site = (name: string, shortName: string, locations: Array<unknown>) => ({ name, shortName, locations })
const disk = (name: string, type: string) => ({ name, type, technology: "disk", driver: { root: `/data/${name}` } })

describe("Topology", () => {
  it("the demo topology has chile (SOURCE, BUFFER) and cologne (BUFFER, LONG_TERM_ARCHIVE, PROCESSING)", () => {
    const t = Topology.demo("/var/lib/ccat")
    const types = (name: string) => t.sites.find((s) => s.name === name)!.locations.map((l) => l.type)
    assert.deepStrictEqual(types("chile"), ["SOURCE", "BUFFER"])
    assert.deepStrictEqual(types("cologne"), ["BUFFER", "LONG_TERM_ARCHIVE", "PROCESSING"])
    assert.strictEqual(t.sites[0].locations[0].driver.root, "/var/lib/ccat/locations/chile-source")
    assert.strictEqual(t.routes[0].adapter, "local")
    assert.strictEqual(t.policy.maxPackageBytes, 1e9)
    assert.strictEqual(t.policy.bundleMaxWait, 30_000)
  })

  it("applies defaults: priority 0, all availability on, 50 GB packages", () => {
    const result = Topology.decode({ sites: [site("chile", "cl", [disk("chile-buffer", "BUFFER")])] })
    assert.isTrue(Either.isRight(result))
    if (Either.isRight(result)) {
      const loc = result.right.sites[0].locations[0]
      assert.strictEqual(loc.priority, 0)
      assert.isTrue(loc.availability.read && loc.availability.write && loc.availability.delete)
      assert.strictEqual(result.right.policy.maxPackageBytes, 50e9)
    }
  })

  it("parses sizes and durations written for people", () => {
    assert.strictEqual(Topology.parseBytes("50 GB"), 50e9)
    assert.strictEqual(Topology.parseBytes("2TiB"), 2 * 1024 ** 4)
    assert.strictEqual(Topology.parseBytes("12"), 12)
    assert.isUndefined(Topology.parseBytes("lots"))
    assert.isUndefined(Topology.parseBytes("-5 GB"))
  })

  it("rejects an unknown location type, naming the field", () => {
    const problems = problemsOf({ sites: [site("chile", "cl", [disk("chile-buffer", "BUFER")])] })
    assert.isTrue(problems.some((p) => p.startsWith("sites[0].locations[0].type:")), problems.join("\n"))
  })

  it("rejects a missing field, a bad size and an unknown field, all at once", () => {
    const problems = problemsOf({
      sites: [
        { name: "chile", locations: [{ ...disk("chile-buffer", "BUFFER"), capacityBytes: "lots" }] }
      ],
      colour: "blue"
    })
    assert.isTrue(problems.some((p) => p.startsWith("sites[0].shortName:")), problems.join("\n"))
    assert.isTrue(
      problems.some((p) => p.startsWith("sites[0].locations[0].capacityBytes:") && p.includes("not a size")),
      problems.join("\n")
    )
    assert.isTrue(problems.some((p) => p.startsWith("colour:")), problems.join("\n"))
  })

  it("rejects a route limit written among the adapter's options, where it would be overridden", () => {
    const problems = problemsOf({
      sites: [site("chile", "cl", [disk("chile-buffer", "BUFFER")]), site("cologne", "col", [disk("cologne-buffer", "BUFFER")])],
      routes: [{ from: "chile", to: "cologne", adapter: "local", options: { maxConcurrentTransfers: 1 } }]
    })
    assert.isTrue(problems.some((p) => p.startsWith("routes[0].options:") && p.includes("fields of the route itself")), problems.join("\n"))
  })

  it("rejects duplicate names, unknown route sites, and routes to a site without a buffer", () => {
    const problems = problemsOf({
      sites: [
        site("chile", "cl", [disk("buf", "BUFFER"), disk("buf", "SOURCE")]),
        site("chile", "cl2", [disk("arch", "LONG_TERM_ARCHIVE")])
      ],
      routes: [
        { from: "chile", to: "cornell", adapter: "rsync" },
        { from: "chile", to: "chile", adapter: "local" }
      ]
    })
    const expect = [
      'sites[0].locations[1].name: "buf" is already the name of sites[0].locations[0]',
      'sites[1].name: "chile" is already the name of sites[0]',
      'routes[0].to: no site is named "cornell"',
      'routes[1].to: a route must lead to another site than "chile"'
    ]
    for (const e of expect) assert.include(problems, e)
  })

  it("rejects driver options a technology needs, and impossible archive copy counts", () => {
    const problems = problemsOf({
      sites: [site("cologne", "col", [{ name: "archive", type: "LONG_TERM_ARCHIVE", technology: "s3" }])],
      policy: { archiveCopies: 2 }
    })
    assert.include(problems, "sites[0].locations[0].driver.bucket: an s3 location needs a bucket")
    assert.include(problems, "policy.archiveCopies: 2 copies are required but only 1 LONG_TERM_ARCHIVE locations exist")
  })

  it("rejects S3 locations that would see each other's objects: one bucket on one server, one prefix beginning the other", () => {
    const s3 = (name: string, type: string, driver: Record<string, unknown>) => ({ name, type, technology: "s3", driver })
    const problems = problemsOf({
      sites: [
        site("chile", "cl", [{ name: "chile-buffer", type: "BUFFER", technology: "disk", driver: { root: "/data/buffer" } }]),
        site("cologne", "col", [
          s3("archive-a", "LONG_TERM_ARCHIVE", { bucket: "ccat", prefix: "arch", endpoint: "http://s3.example:7480/" }),
          s3("archive-b", "LONG_TERM_ARCHIVE", { bucket: "ccat", prefix: "archive/", endpoint: "HTTP://S3.example:7480" }),
          s3("processing", "PROCESSING", { bucket: "ccat", endpoint: "http://s3.example:7480" }),
          s3("elsewhere", "BUFFER", { bucket: "ccat", prefix: "archive/", endpoint: "http://other.example:7480" })
        ])
      ]
    })
    const overlaps = problems.filter((p) => p.includes("would see the other's objects"))
    assert.deepStrictEqual(overlaps, [
      `locations archive-a and archive-b: both keep objects in bucket ccat on http://s3.example:7480 (prefix "arch", prefix "archive/"), so each would see the other's objects; give each location a prefix that does not begin the other's`,
      `locations archive-a and processing: both keep objects in bucket ccat on http://s3.example:7480 (prefix "arch", the whole bucket), so each would see the other's objects; give each location a prefix that does not begin the other's`,
      `locations archive-b and processing: both keep objects in bucket ccat on http://s3.example:7480 (prefix "archive/", the whole bucket), so each would see the other's objects; give each location a prefix that does not begin the other's`
    ])
    // disjoint prefixes in one bucket are fine
    const fine = Topology.decode({
      sites: [
        site("cologne", "col", [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: "/data/buffer" } },
          s3("archive-a", "LONG_TERM_ARCHIVE", { bucket: "ccat", prefix: "archive/" }),
          s3("processing", "PROCESSING", { bucket: "ccat", prefix: "processing/" })
        ])
      ]
    })
    assert.isTrue(Either.isRight(fine))
  })

  it("refuses a secret in any location's driver options when the configuration is decoded, before anything can store it", () => {
    const problems = problemsOf({
      sites: [
        site("cologne", "col", [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: "/data/buffer", password: "hunter2" } },
          {
            name: "archive",
            type: "LONG_TERM_ARCHIVE",
            technology: "s3",
            driver: { bucket: "b", accessKeyId: "AKIA", secretAccessKey: "s" }
          }
        ])
      ]
    })
    const secrets = problems.filter((p) => p.includes("would store a secret"))
    assert.deepStrictEqual(secrets.map((p) => p.split(":")[0]), [
      "sites[0].locations[0].driver.password",
      "sites[0].locations[1].driver.accessKeyId",
      "sites[0].locations[1].driver.secretAccessKey"
    ])
    // no problem repeats the secret itself
    assert.isFalse(problems.some((p) => p.includes("hunter2") || p.includes("AKIA")))
  })

  it("rejects locations whose root folders are the same or one inside another, and a directIo that is not a boolean", () => {
    const at = (name: string, type: string, root: string, extra: Record<string, unknown> = {}) => ({
      name,
      type,
      technology: "disk",
      driver: { root, ...extra }
    })
    const problems = problemsOf({
      sites: [
        site("chile", "cl", [at("chile-source", "SOURCE", "/data/raw"), at("chile-buffer", "BUFFER", "/data/")]),
        site("cologne", "col", [
          at("cologne-buffer", "BUFFER", "/srv/buffer", { directIo: "no" }),
          at("cologne-processing", "PROCESSING", "/srv//buffer/./")
        ])
      ]
    })
    assert.include(
      problems,
      "location chile-source: its root folder /data/raw is inside chile-buffer's (/data); each location needs a folder of its own, not one inside another's"
    )
    assert.include(
      problems,
      "locations cologne-buffer and cologne-processing: both have the root folder /srv/buffer; each location needs a folder of its own"
    )
    assert.isTrue(problems.some((p) => p.startsWith("sites[1].locations[0].driver.directIo:")), problems.join("\n"))
    // siblings that share a prefix of their names are fine
    const fine = Topology.decode({
      sites: [
        site("chile", "cl", [at("chile-source", "SOURCE", "/data/raw"), at("chile-buffer", "BUFFER", "/data/raw2", { directIo: false })])
      ]
    }, registries)
    assert.isTrue(Either.isRight(fine))
  })

  it("rejects unsafe names and a bad adapter", () => {
    const problems = problemsOf({
      sites: [site("../etc", "cl", [disk("Buffer One", "BUFFER")])],
      routes: [{ from: "chile", to: "cologne", adapter: "FTP!" }]
    })
    assert.isTrue(problems.some((p) => p.startsWith("sites[0].name:")), problems.join("\n"))
    assert.isTrue(problems.some((p) => p.startsWith("sites[0].locations[0].name:")), problems.join("\n"))
    assert.isTrue(problems.some((p) => p.startsWith("routes[0].adapter:")), problems.join("\n"))
    const unregistered = problemsOf({
      sites: [site("chile", "cl", [disk("chile-buffer", "BUFFER")]), site("cologne", "col", [disk("cologne-buffer", "BUFFER")])],
      routes: [{ from: "chile", to: "cologne", adapter: "ftp" }]
    })
    assert.include(unregistered, `routes[0].adapter: no transfer adapter is registered as "ftp"; registered: local`)
  })

  it("checks technologies, adapters and their options against the registries, naming each field", () => {
    const input = {
      sites: [site("cologne", "col", [
        { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: "/data/buffer", directio: false } },
        { name: "cologne-archive", type: "LONG_TERM_ARCHIVE", technology: "memory" },
        { name: "cologne-tape", type: "PROCESSING", technology: "tape", driver: { root: "/data/tape" } }
      ])],
      routes: [{ from: "cologne", to: "cologne", adapter: "local", options: { host: "x" } }]
    }
    const problems = problemsOf(input)
    assert.include(problems, 'sites[0].locations[0].driver.directio: is unexpected, expected: "root" | "directIo"')
    assert.include(problems, `sites[0].locations[1].technology: no storage driver is registered for "memory"; registered: disk, s3, tape`)
    assert.include(
      problems,
      "sites[0].locations[2].technology: a PROCESSING location cannot be on tape; tape serves LONG_TERM_ARCHIVE locations"
    )
    assert.isTrue(problems.some((p) => p.startsWith("routes[0].options.host:")), problems.join("\n"))
    // without registries, core checks what it can know: any technology and adapter name is accepted
    const open = Topology.decode({
      sites: [site("cologne", "col", [{ name: "cologne-archive", type: "LONG_TERM_ARCHIVE", technology: "memory" }])]
    })
    assert.isTrue(Either.isRight(open))
  })
})
