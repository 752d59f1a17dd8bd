/**
 * The command builder against every recorded real bbcp run: each recorded command line is read
 * back into typed options and built again word for word, or refused for the recorded reason;
 * sizes, ssh programs and the traps of bbcp's flags are checked beside them.
 */
import { BbcpCommand } from "@ccat/transfer-bbcp"
import { assert, describe, it } from "@effect/vitest"
import { byId, cases, words } from "./BbcpFixtureCases.js"

/** Reads a recorded argv back into typed options (the inverse of the builder), or throws. */
const typed = (argv: ReadonlyArray<string>): { options: BbcpCommand.Options; specs: Array<BbcpCommand.FileSpec> } => {
  const o: Record<string, unknown> = {}
  let i = 0
  const next = () => argv[++i]!
  for (; i < argv.length && argv[i]!.startsWith("-"); i++) {
    const a = argv[i]!
    switch (a) {
      case "-a":
        o.append = argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("-") ? { checkpointDir: next() } : {}
        break
      case "-k":
        o.keep = true
        break
      case "-r":
        o.recursive = true
        break
      case "-f":
        o.force = true
        break
      case "-e":
        o.errorCheck = true
        break
      case "-z":
        o.reverse = true
        break
      case "-v":
        o.verbose = true
        break
      case "-V":
        o.veryVerbose = true
        break
      case "-E": {
        const m = /^(\w+)(=(.*))?$/.exec(next())!
        if (!["md5", "a32", "c32"].includes(m[1]!)) throw new Error(`Invalid checksum type - ${m[1]}`)
        const algorithm = m[1] as BbcpCommand.ChecksumAlgorithm
        const v = m[3]
        o.checksum = {
          algorithm,
          mode: m[2] === undefined
            ? { _tag: "Compute" }
            : v === ""
            ? { _tag: "Print" }
            : /^[0-9a-fA-F]/.test(v!)
            ? { _tag: "Verify", value: v }
            : { _tag: "ToFile", file: v }
        }
        break
      }
      case "-s":
        o.streams = Number(next())
        break
      case "-w":
        o.window = next()
        break
      case "-Z": {
        const [first, last] = next().split(":").map(Number)
        o.ports = last === undefined ? { first } : { first, last }
        break
      }
      case "-t":
        o.timeLimitSeconds = Number(next())
        break
      case "-x":
        o.rateLimit = next()
        break
      case "-P":
        o.progressSeconds = Number(next())
        break
      case "-i":
        o.identityFile = next()
        break
      case "-S":
        o.sourceProgram = next()
        break
      case "-T":
        o.targetProgram = next()
        break
      default:
        throw new Error(`Invalid option, '${a}'.`)
    }
  }
  const specs = argv.slice(i).map((s) => {
    const m = /^(?:([^@:/]+)@)?(?:([^:/]+):)?(.*)$/.exec(s)!
    return { path: m[3]!, ...(m[2] === undefined ? {} : { host: m[2] }), ...(m[1] === undefined ? {} : { user: m[1] }) }
  })
  return { options: o as BbcpCommand.Options, specs }
}

describe("bbcp fixtures: recorded real runs", () => {
  it("has all 50 recorded cases (00 to 49)", () => {
    assert.strictEqual(cases.length, 50)
    assert.deepStrictEqual(
      cases.map((c) => c.id.slice(0, 2)),
      Array.from({ length: 50 }, (_, i) => String(i).padStart(2, "0"))
    )
  })
})

describe("BbcpCommand: the builder reproduces every recorded command line", () => {
  // cases whose command the typed builder must refuse, and why
  const refused: Record<string, RegExp> = {
    "39": /Invalid option, '-Q'/,
    "40": /streams must be 1 to 64/,
    "42": /Invalid checksum type - sha1/,
    "43": /source path must be absolute/
  }
  for (const c of cases) {
    it(`${c.id}`, () => {
      const n = c.id.slice(0, 2)
      const argv = words(c.cmd.replace(/^cd \/data && /, ""))
      assert.strictEqual(argv[0], "/opt/bbcp/bin/bbcp")
      const rest = argv.slice(1)
      if (n === "00") return assert.deepStrictEqual(rest, [...BbcpCommand.versionArgs])
      if (n === "01") return assert.deepStrictEqual(rest, [...BbcpCommand.longVersionArgs])
      if (n === "02") return assert.deepStrictEqual(rest, [...BbcpCommand.helpArgs])
      const build = () => {
        const t = typed(rest)
        return BbcpCommand.args(t.options, t.specs.slice(0, -1), t.specs[t.specs.length - 1]!)
      }
      if (refused[n] !== undefined) {
        assert.throws(build, refused[n])
        return
      }
      const built = build()
      assert.deepStrictEqual(built, rest)
      assert.strictEqual(`/opt/bbcp/bin/bbcp ${BbcpCommand.toShell(built)}`, c.cmd.replace(/^cd \/data && /, ""))
    })
  }

  it("builds the recorded ssh program string from typed ssh settings", () => {
    const t = typed(words(byId("03").cmd).slice(1))
    const program = BbcpCommand.sshProgram({ port: 52222, identityFile: "/etc/bbcp-test/client_key" }, "/opt/bbcp/bin/bbcp")
    assert.include(program, "-p 52222 -i /etc/bbcp-test/client_key")
    assert.isTrue(program.endsWith("%I -l %U %H /opt/bbcp/bin/bbcp"))
    assert.isTrue(t.options.targetProgram!.endsWith("%I -l %U %H /opt/bbcp/bin/bbcp"))
  })

  it("keeps sizes within what bbcp takes (-w 8 KiB to 1g, -B 1 KiB to 1g, -x 1 KiB to 1g), in bytes or with k/m/g", () => {
    const argv = BbcpCommand.args({ window: "4M", blockSize: 1048576, rateLimit: "10m" }, [{ path: "/a" }], { path: "/b" })
    assert.deepStrictEqual(argv.slice(0, 6), ["-w", "4M", "-B", "1048576", "-x", "10m"])
    assert.throws(() => BbcpCommand.args({ window: 4096 }, [{ path: "/a" }], { path: "/b" }), /window of 8192 bytes to 1g, got 4096/)
    assert.throws(() => BbcpCommand.args({ blockSize: "2g" }, [{ path: "/a" }], { path: "/b" }), /block size/)
    assert.throws(() => BbcpCommand.args({ rateLimit: 2 ** 31 }, [{ path: "/a" }], { path: "/b" }), /rate/)
    assert.throws(() => BbcpCommand.args({ window: "8 MiB" }, [{ path: "/a" }], { path: "/b" }), /window/)
  })

  it("guards the traps: -a never swallows a spec, -a with -E = refused, -r with -E value refused, quotes in -T refused", () => {
    const argv = BbcpCommand.args({ append: {} }, [{ path: "/src/f" }], { path: "/dst/", host: "h" })
    assert.deepStrictEqual(argv, ["-a", "--", "/src/f", "h:/dst/"])
    assert.throws(
      () => BbcpCommand.args({ append: {}, checksum: { algorithm: "md5", mode: { _tag: "Print" } } }, [{ path: "/a" }], { path: "/b" }),
      /refuses -a/
    )
    assert.throws(
      () =>
        BbcpCommand.args(
          { recursive: true, checksum: { algorithm: "md5", mode: { _tag: "Verify", value: "c7e883d6fe4a7be4cdd6096761eee4d4" } } },
          [{ path: "/a" }],
          { path: "/b" }
        ),
      /refuses -r/
    )
    assert.throws(() => BbcpCommand.args({ targetProgram: "ssh -o 'A B'" }, [{ path: "/a" }], { path: "/b" }), /no quoting/)
    assert.throws(
      () =>
        BbcpCommand.args({ checksum: { algorithm: "a32", mode: { _tag: "Verify", value: "a0796ce000" } } }, [{ path: "/a" }], {
          path: "/b"
        }),
      /8 hex digits/
    )
  })
})
