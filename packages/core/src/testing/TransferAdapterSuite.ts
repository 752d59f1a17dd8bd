/**
 * The conformance suite every transfer adapter passes, ours and integrators' (STYLE §2: written
 * once, called by each adapter's test with its layer and a way to name local paths as its
 * endpoints). It moves real files: single files, trees of many small files, a large file, and
 * meets a missing or vanishing source, a read-only and a full destination, and (where the adapter
 * declares it) an interrupted transfer that must resume. Read-only and full destinations are
 * small tmpfs mounts, made only when the tests run as root; the output says when they are skipped.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Checksum from "../Checksum.js"
import * as TransferAdapter from "../TransferAdapter.js"
import type * as TransferEndpoint from "../TransferEndpoint.js"
import type * as TransferError from "../TransferError.js"

/** What an adapter's test hands the suite. */
export interface Harness {
  /** The adapter under test, providing the generic tag. */
  readonly layer: Layer.Layer<TransferAdapter.TransferAdapter>
  /** How the adapter reaches a path on this machine as a source (a `Local` or an `Ssh` endpoint). */
  readonly source: (path: string) => TransferEndpoint.Endpoint
  /** How the adapter reaches a path on this machine as a destination. */
  readonly destination: (path: string) => TransferEndpoint.Endpoint
  /** Size of the large-file case in bytes (default: `CCAT_TRANSFER_LARGE_BYTES`, else 512 MiB). */
  readonly largeBytes?: number
  /** Bytes per second that make a transfer slow enough to interrupt or to lose its source mid-way. */
  readonly slowBandwidth?: number
  /** Called when the suite ends (stop sshd, ...). */
  readonly teardown?: () => Promise<void>
}

/** Default size of the large-file case: fits the 4-minute budget of our test run on 2 cores. */
export const defaultLargeBytes = 512 * 1024 * 1024

/** The large-file size: `CCAT_TRANSFER_LARGE_BYTES` when set, else `fallback`. */
export const largeBytesFromEnv = (fallback = defaultLargeBytes): number => {
  const v = process.env.CCAT_TRANSFER_LARGE_BYTES
  return v === undefined || v === "" ? fallback : Number(v)
}

/** Writes `bytes` of incompressible data quickly: a random block, stamped per block. */
export const writeRandomFile = async (file: string, bytes: number): Promise<Checksum.Checksum> => {
  await fs.mkdir(path.dirname(file), { recursive: true })
  const block = randomBytes(4 * 1024 * 1024)
  const hash = createHash("sha256")
  const handle = await fs.open(file, "w")
  try {
    for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
      const n = Math.min(block.length, bytes - off)
      block.writeUInt32LE(i, 0)
      block.writeUInt32LE(Math.floor(Math.random() * 0xffffffff), 4)
      const chunk = block.subarray(0, n)
      hash.update(chunk)
      await handle.write(chunk)
    }
  } finally {
    await handle.close()
  }
  return Checksum.make("sha256", hash.digest("hex"))
}

/** Writes a tree of `count` small files spread over nested directories; returns relative paths. */
export const writeTree = async (root: string, count: number, maxBytes = 8192): Promise<Array<string>> => {
  const rels: Array<string> = []
  for (let i = 0; i < count; i++) {
    const d = i % 12
    const rel = d % 3 === 0 ? `d${d}/sub/f${i}.dat` : `d${d}/f${i}.dat`
    await fs.mkdir(path.join(root, path.dirname(rel)), { recursive: true })
    await fs.writeFile(path.join(root, rel), randomBytes(i === 0 ? 0 : Math.floor(Math.random() * maxBytes)))
    rels.push(rel)
  }
  return rels
}

const sha256 = async (file: string) => Checksum.make("sha256", createHash("sha256").update(await fs.readFile(file)).digest("hex"))

/** A small tmpfs mount (root only), removed by `release`. */
const mountTmpfs = (dir: string, options: string) => {
  execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir])
  return () => {
    try {
      execFileSync("umount", ["-l", dir])
    } catch {
      // already gone
    }
  }
}

const failure = <A>(exit: Exit.Exit<A, unknown>): TransferError.TransferError => {
  if (Exit.isSuccess(exit)) throw new Error("expected the transfer to fail, it succeeded")
  const e = exit.cause._tag === "Fail" ? (exit.cause.error as TransferError.TransferError) : undefined
  if (e === undefined || e._tag !== "TransferError") throw new Error(`expected a TransferError, got ${String(exit.cause)}`)
  return e
}

/**
 * Declares the conformance tests for one adapter. `setup` runs once before them (start sshd,
 * build the layer) and returns the harness.
 */
export const run = (name: string, setup: () => Promise<Harness>): void => {
  describe(`TransferAdapter conformance: ${name}`, () => {
    let h: Harness
    let scratch: string
    const releases: Array<() => void> = []
    let readOnly: string | undefined
    let full: string | undefined
    const isRoot = process.getuid?.() === 0

    beforeAll(async () => {
      h = await setup()
      scratch = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-transfer-suite-"))
      if (isRoot) {
        readOnly = path.join(scratch, "readonly")
        full = path.join(scratch, "full")
        await fs.mkdir(readOnly)
        await fs.mkdir(full)
        releases.push(mountTmpfs(readOnly, "ro,size=1m"), mountTmpfs(full, "size=4m"))
      } else {
        console.log(`[${name}] read-only and full destination cases skipped: they need root to mount a tmpfs`)
      }
    })
    afterAll(async () => {
      for (const r of releases) r()
      if (scratch !== undefined) await fs.rm(scratch, { recursive: true, force: true })
      await h?.teardown?.()
    })

    const dir = async (label: string) => fs.mkdtemp(path.join(scratch, `${label}-`))
    const withAdapter = <A, E>(f: (adapter: TransferAdapter.Service) => Effect.Effect<A, E>) =>
      Effect.flatMap(TransferAdapter.TransferAdapter, f).pipe(Effect.provide(h.layer))
    const fileRequest = (src: string, dst: string, extra: Partial<TransferAdapter.Request> = {}): TransferAdapter.Request => ({
      source: h.source(src),
      destination: h.destination(dst),
      kind: "file",
      ...extra
    })

    it.live("copies one file, verifies it, and leaves no temporary names", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("one"))
        const sum = yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), 3 * 1024 * 1024 + 17))
        const result = yield* withAdapter((a) => a.transfer(fileRequest(path.join(d, "src.bin"), path.join(d, "out", "deep", "dst.bin"))))
        assert.strictEqual(result.verified, true)
        assert.strictEqual(result.checksum, sum)
        assert.strictEqual(result.bytes, 3 * 1024 * 1024 + 17)
        assert.strictEqual(result.files, 1)
        assert.isAbove(result.throughput, 0)
        assert.strictEqual(yield* Effect.promise(() => sha256(path.join(d, "out", "deep", "dst.bin"))), sum)
        assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(d, "out", "deep"))), ["dst.bin"])
      }))

    it.live("replaces an existing destination file (a re-run is idempotent)", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("replace"))
        const sum = yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), 100_000))
        yield* Effect.promise(() => fs.writeFile(path.join(d, "dst.bin"), "stale content"))
        const req = fileRequest(path.join(d, "src.bin"), path.join(d, "dst.bin"))
        yield* withAdapter((a) => a.transfer(req))
        const again = yield* withAdapter((a) => a.transfer(req))
        assert.strictEqual(again.checksum, sum)
        assert.strictEqual(yield* Effect.promise(() => sha256(path.join(d, "dst.bin"))), sum)
      }))

    it.live("copies a tree of many small files and verifies every one", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("tree"))
        const rels = yield* Effect.promise(() => writeTree(path.join(d, "src"), 600))
        const result = yield* withAdapter((a) =>
          a.transfer({ source: h.source(path.join(d, "src")), destination: h.destination(path.join(d, "dst")), kind: "directory" })
        )
        assert.strictEqual(result.files, 600)
        assert.strictEqual(result.verified, true)
        assert.deepStrictEqual(Object.keys(result.manifest ?? {}).sort(), [...rels].sort())
        for (const rel of rels.slice(0, 50)) {
          assert.strictEqual(
            yield* Effect.promise(() => sha256(path.join(d, "dst", rel))),
            yield* Effect.promise(() => sha256(path.join(d, "src", rel)))
          )
        }
      }))

    it.live("streams progress (bytes, rate, percent) and ends with Completed", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("progress"))
        const bytes = 48 * 1024 * 1024
        yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), bytes))
        const adapter = yield* withAdapter(Effect.succeed)
        const limit = adapter.capabilities.bandwidthLimit && h.slowBandwidth !== undefined
          ? { bandwidthLimit: Math.max(h.slowBandwidth, bytes / 3) }
          : {}
        const events = yield* Stream.runCollect(adapter.stream(fileRequest(path.join(d, "src.bin"), path.join(d, "dst.bin"), limit)))
        const list = [...events]
        const last = list[list.length - 1]
        assert.strictEqual(last?._tag, "Completed")
        assert.strictEqual(list.filter((e) => e._tag === "Completed").length, 1)
        const progress = list.filter((e) => e._tag === "Progress")
        assert.isAbove(progress.length, 0, "at least one progress event")
        for (let i = 1; i < progress.length; i++) assert.isAtLeast(progress[i]!.bytes, progress[i - 1]!.bytes)
        for (const p of progress) {
          assert.isAtLeast(p.rate, 0)
          if (p.percent !== undefined) assert.isAtMost(p.percent, 100)
        }
        if (last?._tag === "Completed") assert.strictEqual(last.result.bytes, bytes)
      }))

    it.live("moves a large file (CCAT_TRANSFER_LARGE_BYTES) and verifies it", () =>
      Effect.gen(function* () {
        const bytes = h.largeBytes ?? largeBytesFromEnv()
        console.log(`[${name}] large-file case: ${bytes} bytes (set CCAT_TRANSFER_LARGE_BYTES to change)`)
        const d = yield* Effect.promise(() => dir("large"))
        const sum = yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), bytes))
        const result = yield* withAdapter((a) =>
          a.transfer(fileRequest(path.join(d, "src.bin"), path.join(d, "dst.bin"), { expected: sum }))
        )
        assert.strictEqual(result.checksum, sum)
        assert.strictEqual(result.bytes, bytes)
        console.log(
          `[${name}] large file: ${(result.throughput / 1e6).toFixed(1)} MB/s over ${result.durationMs} ms, verification included`
        )
        yield* Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      }), 180_000)

    it.live("fails SourceNotFound, not retryable, for a missing source", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("missing"))
        const exit = yield* withAdapter((a) => a.transfer(fileRequest(path.join(d, "nope.bin"), path.join(d, "dst.bin")))).pipe(Effect.exit)
        const e = failure(exit)
        assert.strictEqual(e.reason, "SourceNotFound")
        assert.strictEqual(e.retryable, false)
      }))

    it.live("fails SourceCorrupt when the source does not hold the expected checksum, and removes the copy", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("corrupt"))
        yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), 65_536))
        const wrong = Checksum.make("sha256", "0".repeat(64))
        const exit = yield* withAdapter((a) =>
          a.transfer(fileRequest(path.join(d, "src.bin"), path.join(d, "dst.bin"), { expected: wrong }), { retry: TransferAdapter.noRetry })
        ).pipe(Effect.exit)
        const e = failure(exit)
        assert.strictEqual(e.reason, "SourceCorrupt")
        assert.strictEqual(e.retryable, false)
        const left = yield* Effect.promise(() => fs.access(path.join(d, "dst.bin")).then(() => true, () => false))
        assert.isFalse(left, "the copy of a corrupt source is removed")
      }))

    it.live("meets a source that vanishes mid-transfer", () =>
      Effect.gen(function* () {
        const d = yield* Effect.promise(() => dir("vanish"))
        yield* Effect.promise(() => writeTree(path.join(d, "src"), 160, 256 * 1024))
        const adapter = yield* withAdapter(Effect.succeed)
        const limit = adapter.capabilities.bandwidthLimit && h.slowBandwidth !== undefined ? { bandwidthLimit: h.slowBandwidth } : {}
        let removed = false
        const exit = yield* adapter
          .stream(
            { source: h.source(path.join(d, "src")), destination: h.destination(path.join(d, "dst")), kind: "directory", ...limit },
            { retry: TransferAdapter.noRetry }
          )
          .pipe(
            Stream.tap((e) =>
              e._tag === "Progress" && !removed
                ? Effect.promise(async () => {
                  removed = true
                  await fs.rm(path.join(d, "src"), { recursive: true, force: true })
                })
                : Effect.void
            ),
            Stream.runDrain,
            Effect.exit
          )
        assert.isTrue(removed, "the source was removed during the transfer")
        const e = failure(exit)
        assert.include(["SourceVanished", "SourceNotFound"], e.reason)
        assert.strictEqual(e.retryable, false)
      }), 60_000)

    it.live("fails PermissionDenied, not retryable, on a read-only destination", () =>
      Effect.gen(function* () {
        if (readOnly === undefined) return
        const d = yield* Effect.promise(() => dir("ro"))
        yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), 10_000))
        const exit = yield* withAdapter((a) =>
          a.transfer(fileRequest(path.join(d, "src.bin"), path.join(readOnly!, "dst.bin")), { retry: TransferAdapter.noRetry })
        ).pipe(Effect.exit)
        const e = failure(exit)
        assert.strictEqual(e.reason, "PermissionDenied", e.message)
        assert.strictEqual(e.retryable, false)
      }))

    it.live("fails DestinationFull, retryable, on a full destination, with no partial data under the final name", () =>
      Effect.gen(function* () {
        if (full === undefined) return
        const d = yield* Effect.promise(() => dir("full"))
        yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), 8 * 1024 * 1024))
        const exit = yield* withAdapter((a) =>
          a.transfer(fileRequest(path.join(d, "src.bin"), path.join(full!, "dst.bin")), { retry: TransferAdapter.noRetry })
        ).pipe(Effect.exit)
        const e = failure(exit)
        assert.strictEqual(e.reason, "DestinationFull", e.message)
        assert.strictEqual(e.retryable, true)
        const left = yield* Effect.promise(() => fs.readdir(full!))
        assert.notInclude(left, "dst.bin")
        yield* Effect.sync(() => execFileSync("sh", ["-c", `rm -rf ${full}/* ${full}/.[!.]*`]))
      }))

    it.live("resumes an interrupted transfer where the adapter declares resume", () =>
      Effect.gen(function* () {
        const adapter = yield* withAdapter(Effect.succeed)
        if (!adapter.capabilities.resume || h.slowBandwidth === undefined) {
          console.log(`[${name}] resume case skipped: the adapter does not declare resume`)
          return
        }
        const d = yield* Effect.promise(() => dir("resume"))
        const bytes = 64 * 1024 * 1024
        const sum = yield* Effect.promise(() => writeRandomFile(path.join(d, "src.bin"), bytes))
        const req = fileRequest(path.join(d, "src.bin"), path.join(d, "dst.bin"))
        // first attempt: slow, interrupted once a quarter has arrived
        yield* adapter.stream({ ...req, bandwidthLimit: h.slowBandwidth }).pipe(
          Stream.takeUntil((e) => e._tag === "Progress" && e.bytes >= bytes / 4),
          Stream.runDrain
        )
        const partialExists = yield* Effect.promise(() => fs.access(path.join(d, "dst.bin")).then(() => true, () => false))
        assert.isFalse(partialExists, "no partial data under the final name")
        const result = yield* adapter.transfer(req)
        assert.strictEqual(result.checksum, sum)
        assert.isAbove(result.resumedBytes, 0, "the second attempt reused partial data")
        assert.isBelow(result.bytesSent, bytes)
      }), 60_000)
  })
}
