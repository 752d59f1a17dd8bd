/**
 * A worker process for the several-process tape tests: opens the shared archive, says `ready`,
 * waits for the go file, then writes objects under its prefix, printing `put <key> <checksum>`
 * once each is committed. Run bundled (TapeProcesses.ts) as `node TapeWriterChild.mjs root prefix
 * count go pauseMs`; a count of 0 writes until the test kills it, and a count of `hold` takes the
 * archive's write lock, says `holding` and keeps it until killed.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileLock from "../src/internal/FileLock.js"
import { bodyFor, openTape } from "./TapeObjects.js"

const [root, prefix, count, go, pauseMs] = process.argv.slice(2) as [string, string, string, string, string]

Effect.gen(function* () {
  if (count === "hold") {
    yield* FileLock.acquire(path.join(root, "archive", "locks", "write.lock"))
    console.log("holding")
    return yield* Effect.never
  }
  const tape = yield* openTape(root)
  console.log("ready")
  const deadline = Date.now() + 60_000
  while (!fs.existsSync(go)) {
    if (Date.now() > deadline) return yield* Effect.dieMessage("no go file")
    yield* Effect.sleep("10 millis")
  }
  const n = Number(count)
  for (let i = 0; n === 0 || i < n; i++) {
    const key = `${prefix}/${i}.bin`
    const info = yield* tape.put(key, Stream.make(bodyFor(key)))
    console.log(`put ${key} ${info.checksum}`)
    if (Number(pauseMs) > 0) yield* Effect.sleep(Number(pauseMs))
  }
  console.log("done")
}).pipe(Effect.scoped, Effect.runPromise).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
