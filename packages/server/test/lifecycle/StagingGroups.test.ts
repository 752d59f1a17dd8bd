/**
 * The program groups of staged data, named in `policy.staging.groups`, resolved through the
 * host's real group database (`getent`): a name's gid is kept for `groupTtlMillis` rather than
 * looked up for every request, then asked again; a name not found fails every time with the
 * reason and is not kept, so a group added on the host is found at once. The test adds a group
 * of its own to the host (it runs as root) and removes it.
 */
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as TestClock from "effect/TestClock"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { promisify } from "node:util"
import * as StagingLayout from "../../src/lifecycle/StagingLayout.js"

const run = (command: string, args: ReadonlyArray<string>) => Effect.promise(() => promisify(execFile)(command, args))

it.scoped("a group name's gid is kept for its TTL, then read again; an unknown name is never kept", () =>
  Effect.gen(function* () {
    const name = `ccat-t${randomBytes(4).toString("hex")}`
    const [first, second] = [54_000 + randomBytes(2).readUInt16BE() % 5000, 60_000 + randomBytes(2).readUInt16BE() % 5000]
    // unknown first: refused with the reason, and not remembered
    const before = yield* Effect.either(StagingLayout.resolveGroup("deep-field", name))
    assert.isTrue(Either.isLeft(before) && /group ccat-t\w+ of program deep-field is not known on this host/.test(before.left.message))
    yield* Effect.acquireRelease(run("groupadd", ["--gid", String(first), name]), () => run("groupdel", [name]).pipe(Effect.ignore))
    assert.strictEqual(yield* StagingLayout.resolveGroup("deep-field", name), first)
    // the host changes the gid: within the TTL the kept one is used, after it the new one
    yield* run("groupmod", ["--gid", String(second), name])
    yield* TestClock.adjust(StagingLayout.groupTtlMillis - 1)
    assert.strictEqual(yield* StagingLayout.resolveGroup("deep-field", name), first)
    yield* TestClock.adjust(1)
    assert.strictEqual(yield* StagingLayout.resolveGroup("deep-field", name), second)
    assert.strictEqual(yield* StagingLayout.resolveGroup("deep-field", 4321), 4321)
  }))
