/**
 * The tape driver when its writer processes are SIGKILLed at random instants (holding a lock,
 * appending a tape file, committing the catalog) beside one that keeps writing: the survivor
 * gets past every lock a dead writer held, and afterwards the catalog parses, names only
 * complete tape files that read back with their checksums, and takes new writes.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll } from "vitest"
import { bodyFor, checksumFor } from "./TapeObjects.js"
import { assertEveryEntryReads, committedBy, spawnWriter } from "./TapeProcesses.js"
import { scratchDir } from "./TapeScratch.js"

// objects of 1 to 128 KiB, a few hundred at most
const root = scratchDir("ccat-tape-killed-", 256 * 1024 * 1024)
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

describe("Tape writers killed mid-write", () => {
  it.scopedLive(
    "writers SIGKILLed at random instants, beside one that keeps writing, leave a catalog that parses, reads back and takes new writes",
    () =>
      Effect.gen(function* () {
        const dir = path.join(root, "killed-writers")
        const go = path.join(dir, "go")
        fs.mkdirSync(dir, { recursive: true })
        fs.writeFileSync(go, "")
        // the survivor must get past every lock a killed writer held when it died
        const survivor = yield* spawnWriter(dir, "survivor", 0, go, 150)
        const survived = () => committedBy(survivor.output()).length
        const committed: Array<{ key: string; checksum: string }> = []
        // one writer surely dies holding the write lock (the random instants below may miss every
        // lock); with the eight victims and the survivor, ten kills
        yield* survivor.waitFor("a put", () => survived() > 0)
        const holder = yield* spawnWriter(dir, "holder", "hold", go)
        yield* holder.waitFor("the lock", (out) => out.includes("holding"))
        holder.process.kill("SIGKILL")
        yield* holder.exited
        const beforeHolder = survived()
        yield* survivor.waitFor("put after the holder died", () => survived() > beforeHolder)
        const rounds = 8
        // the next victims start while one writes, so process start-ups overlap without all
        // of them competing for the CPU at once
        const ahead = 2
        const victimOf = (round: number) => spawnWriter(dir, `k${round}`, 0, path.join(dir, `go-k${round}`))
        const victims = yield* Effect.forEach(Array.from({ length: ahead }, (_, round) => round), victimOf)
        for (let round = 0; round < rounds; round++) {
          if (round + ahead < rounds) victims.push(yield* victimOf(round + ahead))
          const victim = victims[round]!
          yield* victim.waitFor("ready", (out) => out.includes("ready"))
          fs.writeFileSync(path.join(dir, `go-k${round}`), "")
          const puts = 1 + Math.floor(Math.random() * 2)
          yield* victim.waitFor(`${puts} puts`, (out) => committedBy(out).length >= puts)
          // a random instant inside a later write: holding a lock, appending, or committing
          yield* Effect.sleep(Math.floor(Math.random() * 25))
          victim.process.kill("SIGKILL")
          assert.strictEqual((yield* victim.exited).signal, "SIGKILL")
          committed.push(...committedBy(victim.output()))
          const before = survived()
          yield* survivor.waitFor("put after a kill", () => survived() > before)
        }
        survivor.process.kill("SIGKILL")
        yield* survivor.exited
        committed.push(...committedBy(survivor.output()))
        // a live process took over the lock of the dead holder
        assert.isTrue(fs.readdirSync(path.join(dir, "archive", "locks")).some((n) => n.includes(".broken-")))
        const { objects, tape } = yield* assertEveryEntryReads(dir)
        for (const { key, checksum } of committed) {
          assert.strictEqual(objects[key]?.checksum, checksum, `${key}, reported committed, is in the catalog`)
          assert.strictEqual(checksum, checksumFor(key))
        }
        // the lock files the killed writers held do not stop a new writer
        for (const key of ["after/0.bin", "after/1.bin"]) {
          const info = yield* tape.put(key, Stream.make(bodyFor(key)))
          assert.strictEqual(info.checksum, checksumFor(key))
          assert.strictEqual((yield* StorageDriverSuite.digestOf(tape.get(key))).checksum, checksumFor(key))
        }
        assert.isEmpty(fs.readdirSync(path.join(dir, "archive")).filter((n) => n.endsWith(".tmp")), "no temporary catalog is left")
      }),
    120_000
  )
})
