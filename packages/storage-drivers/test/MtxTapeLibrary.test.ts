/**
 * The real-drive backend (mt + mtx). No SCSI tape hardware exists on CI machines, so the
 * backend's commands and device I/O go to a simulated changer and drives below, which answer
 * as mtx and mt-st document (status formats, load/unload rules, asf positioning, a file mark at
 * close). The tape driver and the shared suite run on top of it unchanged.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import { MtxTapeLibrary, Tape } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import { Readable, Writable } from "node:stream"
import { afterAll } from "vitest"
import { scratchDir } from "./TapeScratch.js"

const MiB = 1024 * 1024

/** A changer with slots and drives, and cartridges holding tape files, as the tools see it. */
class SimulatedLibrary {
  readonly slots: Array<string | undefined>
  readonly drives: Array<{ label: string | undefined; source: number | undefined; file: number }>
  readonly tapes = new Map<string, Array<Buffer>>()
  readonly log: Array<string> = []
  constructor(labels: ReadonlyArray<string>, readonly devices: ReadonlyArray<string>) {
    this.slots = [...labels, undefined]
    this.drives = devices.map(() => ({ label: undefined, source: undefined, file: -1 }))
    for (const l of labels) this.tapes.set(l, [])
  }
  private drive(dev: string) {
    const i = this.devices.indexOf(dev)
    if (i < 0) throw new Error(`${dev}: No such device`)
    return this.drives[i]!
  }
  status(): string {
    const lines = [`  Storage Changer /dev/sg3:${this.drives.length} Drives, ${this.slots.length} Slots ( 0 Import/Export )`]
    this.drives.forEach((d, i) =>
      lines.push(
        d.label === undefined
          ? `Data Transfer Element ${i}:Empty`
          : `Data Transfer Element ${i}:Full (Storage Element ${d.source} Loaded):VolumeTag = ${d.label}                      `
      )
    )
    this.slots.forEach((l, i) =>
      lines.push(
        l === undefined
          ? `      Storage Element ${i + 1}:Empty`
          : `      Storage Element ${i + 1}:Full :VolumeTag=${l}                      `
      )
    )
    return lines.join("\n") + "\n"
  }
  run = async (command: string, args: ReadonlyArray<string>): Promise<string> => {
    this.log.push(`${command} ${args.join(" ")}`)
    const [flag, dev, op, a, b] = args
    if (flag !== "-f") throw new Error("usage")
    if (command === "mtx") {
      if (op === "status") return this.status()
      const slot = Number(a)
      const drive = this.drives[Number(b)]
      if (drive === undefined) throw new Error(`Invalid drive ${b}`)
      if (op === "load") {
        if (drive.label !== undefined) throw new Error(`Drive ${b} Full (Storage Element ${drive.source} loaded)`)
        const label = this.slots[slot - 1]
        if (label === undefined) throw new Error(`source Element Address ${slot} is Empty`)
        this.slots[slot - 1] = undefined
        Object.assign(drive, { label, source: slot, file: 0 })
        return ""
      }
      if (op === "unload") {
        if (drive.label === undefined) throw new Error(`Data Transfer Element ${b} is Empty`)
        if (this.slots[slot - 1] !== undefined) throw new Error(`Storage Element ${slot} is Already Full`)
        this.slots[slot - 1] = drive.label
        Object.assign(drive, { label: undefined, source: undefined, file: -1 })
        return ""
      }
      throw new Error(`mtx: unknown command ${op}`)
    }
    if (command === "mt") {
      const d = this.drive(dev!)
      if (op === "status") {
        return `SCSI 2 tape drive:\nFile number=${d.file}, block number=0, partition=0.\nTape block size 0 bytes. Density code 0x5a (LTO-8).\n` +
          `Soft error count since last status=0\nGeneral status bits on (41010000):\n ${
            d.label === undefined ? "DR_OPEN" : `${d.file === 0 ? "BOT " : ""}ONLINE`
          } IM_REP_EN\n`
      }
      if (d.label === undefined) throw new Error(`${dev}: No medium found`)
      if (op === "rewind") d.file = 0
      else if (op === "setblk") return ""
      else if (op === "asf") {
        const n = Number(a)
        if (n > this.tapes.get(d.label)!.length) throw new Error(`${dev}: Input/output error`)
        d.file = n
      } else throw new Error(`mt: unknown operation ${op}`)
      return ""
    }
    throw new Error(`${command}: command not found`)
  }
  device = {
    read: (dev: string, blockSize: number): Readable => {
      const d = this.drive(dev)
      const file = this.tapes.get(d.label!)![d.file]
      d.file += 1
      const blocks: Array<Buffer> = []
      for (let at = 0; file !== undefined && at < file.length; at += blockSize) blocks.push(file.subarray(at, at + blockSize))
      return Readable.from(blocks)
    },
    write: (dev: string): Writable => {
      const d = this.drive(dev)
      const blocks: Array<Buffer> = []
      return new Writable({
        write: (chunk: Buffer, _enc, cb) => {
          blocks.push(Buffer.from(chunk))
          cb()
        },
        final: (cb) => {
          // closing the device writes the file mark; anything after this file is gone
          const tape = this.tapes.get(d.label!)!
          tape.splice(d.file, tape.length, Buffer.concat(blocks))
          d.file += 1
          cb()
        }
      })
    }
  }
}

// the cache holds the suite's 32 MiB object twice at most (put, recall)
const root = scratchDir("ccat-mtx-", 512 * MiB)
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const backend = (sim: SimulatedLibrary, capacityBytes = 1024 * MiB) =>
  MtxTapeLibrary.make({ changer: "/dev/sg3", drives: sim.devices, capacityBytes, blockSize: 64 * 1024, run: sim.run, device: sim.device })

StorageDriverSuite.run({
  name: "tape on mt/mtx (simulated changer and drives)",
  layer: Layer.suspend(() => {
    const sim = new SimulatedLibrary(["CCAT00L8", "CCAT01L8", "CCAT02L8"], ["/dev/nst0", "/dev/nst1"])
    return Tape.layer({ root: path.join(root, "suite"), library: backend(sim), keepOnline: false })
  }),
  largeBytes: 32 * MiB
})

describe("MtxTapeLibrary", () => {
  it("parses mtx status as mtx prints it", () => {
    const text = `  Storage Changer /dev/sg3:2 Drives, 24 Slots ( 1 Import/Export )
Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = A00003L8
Data Transfer Element 1:Empty
      Storage Element 1:Full :VolumeTag=A00001L8
      Storage Element 2:Empty
      Storage Element 24 IMPORT/EXPORT:Full :VolumeTag=CLN001L1
`
    assert.deepStrictEqual(MtxTapeLibrary.parseMtxStatus(text), [
      { kind: "drive", index: 0, label: "A00003L8", sourceSlot: 3 },
      { kind: "drive", index: 1, label: undefined, sourceSlot: undefined },
      { kind: "slot", index: 1, label: "A00001L8" },
      { kind: "slot", index: 2, label: undefined },
      { kind: "slot", index: 24, label: "CLN001L1" }
    ])
  })

  it("parses mt status as mt-st prints it", () => {
    const text = `SCSI 2 tape drive:\nFile number=7, block number=0, partition=0.\nTape block size 0 bytes. Density code 0x5a (LTO-8).\n` +
      `Soft error count since last status=0\nGeneral status bits on (81010000):\n EOF ONLINE IM_REP_EN\n`
    assert.deepStrictEqual(MtxTapeLibrary.parseMtStatus(text), { fileNumber: 7, blockNumber: 0, online: true })
  })

  it.scopedLive("loads, positions and writes with the documented commands", () =>
    Effect.gen(function* () {
      const sim = new SimulatedLibrary(["CCAT00L8", "CCAT01L8"], ["/dev/nst0"])
      const tape = yield* Tape.make({ root: path.join(root, "commands"), library: backend(sim, 2 * MiB), keepOnline: false })
      yield* tape.put("a.bin", StorageDriverSuite.bodyOf(MiB + 5, 1))
      yield* tape.put("b.bin", StorageDriverSuite.bodyOf(MiB + 5, 2))
      const b = yield* StorageDriverSuite.digestOf(tape.get("b.bin"))
      assert.strictEqual(b.checksum, (yield* tape.stat("b.bin")).checksum)
      assert.deepStrictEqual(sim.log.filter((l) => /load|unload|asf/.test(l)), [
        "mtx -f /dev/sg3 load 1 0",
        "mt -f /dev/nst0 asf 0",
        "mtx -f /dev/sg3 unload 1 0",
        "mtx -f /dev/sg3 load 2 0",
        "mt -f /dev/nst0 asf 0",
        "mt -f /dev/nst0 asf 0"
      ])
      assert.strictEqual(sim.tapes.get("CCAT00L8")!.length, 1)
      assert.strictEqual(sim.tapes.get("CCAT01L8")![0]!.length, MiB + 5)
    }))
})
