/**
 * The builder and the parser against every recorded real bbcp run (BbcpFixtureCases.ts): each
 * recorded command line is read back into typed options and built again word for word, or refused
 * for the recorded reason; every recorded stderr line is recognised, every failure classified as
 * recorded, and the lines that matter (files, checksums, progress, append offsets, summaries) read
 * as bbcp printed them.
 */
import { TransferError } from "@ccat/core"
import { BbcpCommand, BbcpOutput } from "@ccat/transfer-bbcp"
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { byId, cases, fixtures, words } from "./BbcpFixtureCases.js"

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

/** What each recorded run must parse to: exit classification and the lines that matter. */
const expectedFailure: Record<string, { reason: string; retryable: boolean }> = {
  "23": { reason: "Interrupted", retryable: true },
  "24": { reason: "Interrupted", retryable: true },
  "27": { reason: "Interrupted", retryable: true },
  "28": { reason: "SourceNotFound", retryable: false },
  "29": { reason: "InvalidRequest", retryable: false },
  "30": { reason: "InvalidRequest", retryable: false },
  "33": { reason: "PermissionDenied", retryable: false },
  "34": { reason: "Connection", retryable: true },
  "35": { reason: "Connection", retryable: true },
  "36": { reason: "Connection", retryable: true },
  "37": { reason: "AuthenticationFailed", retryable: false },
  "38": { reason: "ToolMissing", retryable: false },
  "39": { reason: "InvalidRequest", retryable: false },
  "40": { reason: "InvalidRequest", retryable: false },
  "41": { reason: "ChecksumMismatch", retryable: true },
  "42": { reason: "InvalidRequest", retryable: false },
  "43": { reason: "InvalidRequest", retryable: false },
  "44": { reason: "Timeout", retryable: true }
}

describe("BbcpOutput: the parser reads every recorded stderr", () => {
  for (const c of cases) {
    it(`${c.id}`, () => {
      const n = c.id.slice(0, 2)
      const errorCheck = words(c.cmd).includes("-e")
      const report = BbcpOutput.parse(c.stderr, { errorCheck })
      // every line is recognised; only ssh and the remote shell write lines bbcp did not
      const foreignAllowed = ["34", "35", "36", "37", "38"].includes(n)
      assert.strictEqual(report.foreign.length > 0, foreignAllowed, `foreign lines: ${report.foreign.join(" | ")}`)
      if (c.exit === 0) {
        assert.deepStrictEqual(report.errors, [], "a successful run prints no error line")
        assert.strictEqual(expectedFailure[n], undefined)
      } else {
        const f = BbcpOutput.classify(c.exit === 143 ? null : c.exit, c.exit === 143 ? "SIGTERM" : null, c.stderr)
        const want = expectedFailure[n]
        assert.isDefined(want, `case ${c.id} exits ${c.exit} and needs an expected classification`)
        assert.strictEqual(f.reason, want!.reason, f.detail)
        assert.strictEqual(f.retryable ?? TransferError.retryableByDefault[f.reason], want!.retryable)
        // the exit code alone (as a shell reports it) gives the same answer
        assert.strictEqual(BbcpOutput.classify(c.exit, null, c.stderr).reason, want!.reason)
      }
      // version and help print on stdout, nothing on stderr
      if (["00", "01"].includes(n)) assert.strictEqual(BbcpCommand.parseVersion(c.stdout), "14.04.14.00.1")
      if (n === "02") assert.include(c.stdout, "Usage:")
      const verbose = /(^| )-[vV]( |$)/.test(c.cmd)
      if (c.exit === 0 && verbose && !report.alreadyCopied.length) {
        assert.isDefined(report.summary, "a verbose successful run ends with the summary")
        assert.strictEqual(report.summary!.files, report.files.length)
      }
    })
  }

  it("04: a short transfer prints Creating, the per-file line and the summary, no progress", () => {
    const r = BbcpOutput.parse(byId("04").stderr)
    assert.strictEqual(r.progress.length, 0)
    assert.deepStrictEqual(r.files.map((f) => [f.path, f.bytes]), [["/data/dst/file200m.bin", 209715200]])
    assert.strictEqual(r.summary?.files, 1)
    assert.closeTo(r.summary!.rate, 141.3 * 1024 * 1024, 1)
    assert.strictEqual(r.lines.filter((l) => l._tag === "Creating").length, 1)
  })

  it("05 and 19: very verbose statistics are recognised, not taken for errors", () => {
    for (const id of ["05", "19"]) {
      const r = BbcpOutput.parse(byId(id).stderr)
      assert.isAtLeast(r.lines.filter((l) => l._tag === "Statistics").length, 5)
      assert.strictEqual(r.errors.length, 0)
    }
  })

  it("06, 07, 11, 14, 49: checksum lines, normalised; 10 and 13: -e with a32/c32 flagged untrusted", () => {
    const one = (id: string) => BbcpOutput.parse(byId(id).stderr, { errorCheck: words(byId(id).cmd).includes("-e") }).checksums[0]!
    assert.deepInclude(one("06"), {
      algorithm: "md5",
      value: "c7e883d6fe4a7be4cdd6096761eee4d4",
      host: "127.0.0.1",
      path: "/data/dst/file200m.bin",
      trusted: true
    })
    assert.deepInclude(one("07"), { value: "c7e883d6fe4a7be4cdd6096761eee4d4", trusted: true })
    assert.deepInclude(one("11"), { algorithm: "a32", hex: "a0796ce000000000", value: "a0796ce0", trusted: true })
    assert.deepInclude(one("14"), { algorithm: "c32", value: "b4039f80", trusted: true })
    assert.deepInclude(one("49"), { host: "localhost", value: "c7e883d6fe4a7be4cdd6096761eee4d4" })
    assert.deepInclude(one("10"), { algorithm: "a32", trusted: false })
    assert.notStrictEqual(one("10").value, "a0796ce0")
    assert.deepInclude(one("13"), { algorithm: "c32", value: "830ed3ed", trusted: false })
  })

  it("08: the checksum written to a file has the same line format", () => {
    const text = readFileSync(path.join(fixtures, "08-md5-to-file.checksum-file"), "utf8")
    const r = BbcpOutput.parse(text)
    assert.strictEqual(r.checksums[0]?.value, "c7e883d6fe4a7be4cdd6096761eee4d4")
    assert.strictEqual(BbcpOutput.parse(byId("08").stderr).lines.filter((l) => l._tag !== "Blank").length, 0)
  })

  it("17 and 18: a tree of 503 files: header, 503 per-file lines, 503 checksums", () => {
    const r17 = BbcpOutput.parse(byId("17").stderr)
    assert.deepInclude(r17.lines, { _tag: "Copying", files: 503, directories: 15 })
    assert.strictEqual(r17.files.length, 503)
    assert.strictEqual(r17.summary?.files, 503)
    const r18 = BbcpOutput.parse(byId("18").stderr, { errorCheck: true })
    assert.strictEqual(r18.checksums.length, 503)
    assert.isTrue(r18.checksums.every((c) => c.trusted && c.value.length === 32))
  })

  it("23: the orphaned agents' progress lines after the parent was killed still parse", () => {
    const r = BbcpOutput.parse(byId("23").stderr)
    assert.deepStrictEqual(r.progress.map((p) => p.percent), [34, 50, 67, 83])
    assert.closeTo(r.progress[0]!.rate, 178.3 * 1024 * 1024, 1)
  })

  it("24 to 26: append offsets, the resume notice and an already complete copy", () => {
    assert.deepStrictEqual(BbcpOutput.parse(byId("24").stderr).appended.map((a) => a.offset), [0])
    const r25 = BbcpOutput.parse(byId("25").stderr)
    assert.deepStrictEqual(r25.appended.map((a) => a.offset), [132427776])
    assert.deepInclude(r25.lines, { _tag: "WillComplete", path: "/data/dst/file1g.bin" })
    // bytes on the per-file line are this run's only: offset + sent = the whole file
    assert.strictEqual(r25.appended[0]!.offset + r25.files[0]!.bytes, 1073741824)
    assert.deepStrictEqual(BbcpOutput.parse(byId("26").stderr).alreadyCopied, ["/data/dst/file1g.bin"])
  })

  it("45: -P 1 floods 391 identical-per-second progress lines; the parser keeps the lines that move the percent on", () => {
    const r = BbcpOutput.parse(byId("45").stderr)
    assert.strictEqual(r.lines.filter((l) => l._tag === "Progress").length, 391)
    assert.deepStrictEqual(r.progress.map((p) => p.percent), [13, 33, 53, 72, 73, 92])
  })

  it("46: verbose progress carries the interval rate and the average", () => {
    const r = BbcpOutput.parse(byId("46").stderr)
    assert.deepStrictEqual(r.progress.map((p) => p.percent), [23, 43, 63, 83])
    assert.closeTo(r.progress[1]!.rate, 9.9 * 1024 * 1024, 1)
    assert.closeTo(r.progress[1]!.average, 10.0 * 1024 * 1024, 1)
  })

  it("a source path named missing, once the source was known to exist, is SourceVanished whether bbcp exits 2 or 128", () => {
    // what the real 14.04.14.00.1 printed when a tree's source was removed mid-copy (local, and over ssh)
    const stderr = "bbcp: Copying 160 files in 3 directories.\nbbcp: No such file or directory opening /data/src/tree/d1/f37\n"
    for (const exit of [2, 128]) {
      const f = BbcpOutput.classify(exit, null, stderr, { sources: ["/data/src/tree"] })
      assert.strictEqual(f.reason, "SourceVanished", f.detail)
      assert.strictEqual(TransferError.retryableByDefault[f.reason], false)
    }
    // a sibling whose name starts like the source is not below it
    assert.notStrictEqual(BbcpOutput.classify(2, null, stderr, { sources: ["/data/src/tre"] }).reason, "SourceVanished")
    // 43: the path named is the target's, so the source did not vanish
    assert.strictEqual(
      BbcpOutput.classify(byId("43").exit, null, byId("43").stderr, { sources: ["/data/src/file200m.bin"] }).reason,
      "InvalidRequest"
    )
  })

  it("exit 128 is a failed thread: Timeout only when bbcp says its time limit passed, else what its words name", () => {
    assert.strictEqual(BbcpOutput.classify(128, null, byId("44").stderr).reason, "Timeout")
    assert.strictEqual(BbcpOutput.classify(128, null, "bbcp: Connection reset by peer reading from stream\n").reason, "Connection")
    assert.strictEqual(BbcpOutput.classify(128, null, "bbcp: No space left on device writing /d/x\n").reason, "DestinationFull")
    const bare = BbcpOutput.classify(128, null, "")
    assert.strictEqual(bare.reason, "Partial")
    assert.isTrue(TransferError.retryableByDefault[bare.reason])
  })

  it("rates are 1024-based whatever the label; B/s has no prefix", () => {
    assert.strictEqual(BbcpOutput.rate("1.0", "KB"), 1024)
    assert.strictEqual(BbcpOutput.rate("512.0", "B"), 512)
    assert.deepInclude(BbcpOutput.parseLine("bbcp: 261126 11:25:21  not done; 10.0 MB/s"), { _tag: "Progress", percent: undefined })
  })
})
