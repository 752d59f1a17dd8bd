import { describe, expect, it } from "vitest"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as RecordLog from "../src/internal/RecordLog.js"

const text = (b: Buffer) => b.toString("utf8")

describe("RecordLog framing", () => {
  it("reads back what was appended, in order", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-records-"))
    const file = path.join(dir, "log")
    await RecordLog.append(file, [Buffer.from("one"), Buffer.from("two")])
    await RecordLog.append(file, [Buffer.from("three")])
    const { scan, size } = await RecordLog.read(file)
    expect(scan.records.map(text)).toEqual(["one", "two", "three"])
    expect(scan.validEnd).toBe(size)
    await fs.rm(dir, { recursive: true })
  })

  it("recognises a torn tail at every cut point of the last record", () => {
    const good = Buffer.concat([RecordLog.frame(Buffer.from("a")), RecordLog.frame(Buffer.from("b"))])
    const last = RecordLog.frame(Buffer.from(JSON.stringify({ t: "item", id: "x", item: "ü".repeat(20) })))
    for (let cut = 1; cut < last.length; cut++) {
      const scan = RecordLog.scan(Buffer.concat([good, last.subarray(0, cut)]))
      expect(scan.records.map(text)).toEqual(["a", "b"])
      expect(scan.validEnd).toBe(good.length)
      expect(scan.corrupt).toEqual([])
    }
  })

  it("skips a damaged record in the middle and keeps the ones after it", () => {
    const records = ["first", "second", "third"].map((s) => RecordLog.frame(Buffer.from(s)))
    const buf = Buffer.concat(records)
    const at = records[0]!.length + 14 // a payload byte of "second"
    buf[at] = buf[at]! ^ 0xff
    const scan = RecordLog.scan(buf)
    expect(scan.records.map(text)).toEqual(["first", "third"])
    expect(scan.corrupt).toEqual([[records[0]!.length, records[0]!.length + records[1]!.length]])
    expect(scan.validEnd).toBe(buf.length)
  })

  it("does not trust a damaged length", () => {
    const records = ["first", "second"].map((s) => RecordLog.frame(Buffer.from(s)))
    const buf = Buffer.concat(records)
    buf.writeUInt32BE(3, records[0]!.length + 4)
    expect(RecordLog.scan(buf).records.map(text)).toEqual(["first"])
  })
})
