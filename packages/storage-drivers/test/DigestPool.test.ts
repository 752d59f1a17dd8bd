/**
 * The digest pool on real worker threads: a large buffer the caller owns goes to a worker and
 * comes back with its digest (the caller's view is detached meanwhile: proof it moved, no copy),
 * small ones and slices of a larger buffer are digested here, and many at once all come back.
 */
import { describe, it, assert } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as DigestPool from "../src/internal/DigestPool.js"

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("base64")

describe("DigestPool", () => {
  it("moves an owned buffer to a worker and back with its MD5", async () => {
    const bytes = Buffer.allocUnsafe(4 * 1024 * 1024)
    randomBytes(bytes.length).copy(bytes)
    const expected = md5(bytes)
    const copy = Buffer.from(bytes)
    const result = await DigestPool.digest("md5", bytes)
    assert.strictEqual(bytes.buffer.byteLength, 0, "the caller's buffer was transferred")
    assert.strictEqual(result.digest, expected)
    assert.isTrue(Buffer.from(result.bytes).equals(copy))
  })

  it("digests small buffers and slices of larger ones on the calling thread, untouched", async () => {
    const small = randomBytes(1000)
    const big = Buffer.alloc(8 * 1024 * 1024, 7)
    // a view of most of a larger buffer: another view may share that memory, so it stays here
    const slice = big.subarray(0, 6 * 1024 * 1024)
    for (const b of [small, slice]) {
      const result = await DigestPool.digest("md5", b)
      assert.strictEqual(result.bytes, b)
      assert.strictEqual(result.digest, md5(b))
    }
    assert.strictEqual(big.buffer.byteLength, 8 * 1024 * 1024)
  })

  it("serves many at once, each with its own bytes", async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => Buffer.alloc(2 * 1024 * 1024 + i, i + 1))
    const expected = inputs.map((b) => ({ digest: md5(b), bytes: Buffer.from(b) }))
    const results = await Promise.all(inputs.map((b) => DigestPool.digest("md5", b)))
    results.forEach((r, i) => {
      assert.strictEqual(r.digest, expected[i].digest)
      assert.isTrue(Buffer.from(r.bytes).equals(expected[i].bytes))
    })
  })
})
