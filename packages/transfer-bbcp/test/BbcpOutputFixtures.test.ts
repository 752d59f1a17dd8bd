/**
 * The output parser against every recorded real bbcp run: every stderr line recognised, every
 * failure classified as recorded, and the lines that matter (files, checksums, progress, append
 * offsets, summaries) read as bbcp printed them.
 */
import { TransferError } from "@ccat/core"
import { BbcpCommand, BbcpOutput } from "@ccat/transfer-bbcp"
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { byId, cases, fixtures, words } from "./BbcpFixtureCases.js"

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
