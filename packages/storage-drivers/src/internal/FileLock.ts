/**
 * Mutual exclusion between OS processes that share a folder (several workers of one site on one
 * tape archive). A lock is a file that exists while it is held, naming its holder: pid,
 * hostname, boot id, pid namespace and the process's start time.
 *
 * Why this shape rather than a library or a lease:
 * - the file is created complete, by `link(2)` of a fully written temporary file, so a holder
 *   killed while taking the lock never leaves an empty or half-written lock file;
 * - a lock is taken over only when its holder is provably dead: same host (hostname, boot id and
 *   pid namespace all equal) and the pid is gone or now belongs to a process started at another
 *   time (pid reuse). Age never breaks a lock, so a holder that is merely slow (a paused VM, a
 *   loaded host, a long tape append) keeps it; mtime-lease locks such as `proper-lockfile` hand
 *   such a lock to a second process, and a kernel `flock` needs a native addon;
 * - a takeover is claimed first by creating `<lock>.broken-<nonce>` exclusively, so of several
 *   processes that find the same dead holder only one removes its file: another one cannot
 *   remove the lock the winner takes next.
 * A lock held from another host or namespace is waited for, never broken: remove it by hand once
 * that holder is known to be gone.
 */
import { Backoff } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import { readFileSync, readlinkSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

/** Who holds a lock, as written in the lock file. */
export interface Holder {
  readonly pid: number
  readonly hostname: string
  readonly bootId: string | undefined
  readonly pidNamespace: string | undefined
  /** Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  readonly startTicks: string | undefined
  /** Tells this holding apart from any other, even of the same process. */
  readonly nonce: string
  readonly since: string
}

/** A lock this process holds. */
export interface Held {
  readonly file: string
  readonly nonce: string
}

const readOr = (read: () => string): string | undefined => {
  try {
    return read().trim()
  } catch {
    return undefined
  }
}

/** The start time of a process, or undefined where `/proc` does not say. */
const startTicksOf = (pid: number): string | undefined => {
  const stat = readOr(() => readFileSync(`/proc/${pid}/stat`, "utf8"))
  if (stat === undefined) return undefined
  // the command name (field 2) may hold spaces and parentheses: count fields after its last ")"
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

const bootId = readOr(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8"))
const pidNamespace = readOr(() => readlinkSync("/proc/self/ns/pid"))
const self = { pid: process.pid, hostname: os.hostname(), bootId, pidNamespace, startTicks: startTicksOf(process.pid) }

/** True only when the holder cannot be running any more; anything uncertain counts as alive. */
export const isDead = (holder: Holder): boolean => {
  if (holder.hostname !== self.hostname) return false
  if (holder.pidNamespace !== self.pidNamespace) return false
  // a new boot id on the same host: every process of the old boot is gone
  if (holder.bootId !== undefined && self.bootId !== undefined) {
    if (holder.bootId !== self.bootId) return true
  } else if (holder.bootId !== self.bootId) return false
  try {
    process.kill(holder.pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH"
  }
  if (holder.startTicks === undefined) return false
  const now = startTicksOf(holder.pid)
  return now !== undefined && now !== holder.startTicks
}

const parse = (text: string): Holder | undefined => {
  try {
    const h = JSON.parse(text) as Holder
    return typeof h.pid === "number" && typeof h.nonce === "string" && typeof h.hostname === "string" ? h : undefined
  } catch {
    return undefined
  }
}

/** The holder named in a lock file; undefined when there is none (or it is not a lock file). */
export const holderOf = (file: string): Promise<Holder | undefined> =>
  fs.readFile(file, "utf8").then(parse, (e) => e?.code === "ENOENT" ? undefined : Promise.reject(e))

const ignoreMissing = (e: NodeJS.ErrnoException) => e?.code === "ENOENT" ? undefined : Promise.reject(e)

/** Claims the takeover of a dead holder's lock; true when this process removed it. */
const breakDead = async (file: string, dead: Holder): Promise<boolean> => {
  const marker = `${file}.broken-${dead.nonce}`
  try {
    await (await fs.open(marker, "wx")).close()
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false
    throw e
  }
  // only the marker's creator gets here, and the dead holder cannot release: the file is still its
  const still = await holderOf(file)
  if (still?.nonce === dead.nonce) await fs.unlink(file).catch(ignoreMissing)
  // markers only need to outlive processes that read the dead holder a moment ago, and a
  // holder's temporary file lives for a few system calls: older ones are what killed takers left
  const dir = path.dirname(file)
  const prefix = `${path.basename(file)}.`
  for (const name of await fs.readdir(dir)) {
    if (!name.startsWith(prefix) || name === path.basename(marker)) continue
    const at = path.join(dir, name)
    const st = await fs.stat(at).catch(() => undefined)
    if (st !== undefined && Date.now() - st.mtimeMs > 10 * 60_000) await fs.unlink(at).catch(() => undefined)
  }
  return true
}

/** Takes the lock if it is free or its holder is dead; undefined while a live process holds it. */
export const tryAcquire = (file: string): Promise<Held | undefined> =>
  (async () => {
    const nonce = randomBytes(12).toString("hex")
    const holder: Holder = { ...self, nonce, since: new Date().toISOString() }
    const tmp = `${file}.${nonce}.tmp`
    await fs.mkdir(path.dirname(file), { recursive: true })
    const handle = await fs.open(tmp, "wx")
    try {
      await handle.writeFile(JSON.stringify(holder))
      await handle.sync()
    } finally {
      await handle.close()
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fs.link(tmp, file)
          return { file, nonce }
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
        }
        const text = await fs.readFile(file, "utf8").catch(ignoreMissing)
        // released in between: try again at once
        if (text === undefined) continue
        const current = parse(text)
        if (current === undefined || !isDead(current)) return undefined
        await breakDead(file, current)
      }
      return undefined
    } finally {
      await fs.unlink(tmp).catch(() => undefined)
    }
  })()

/** Gives the lock up, if it is still this holding's (a removed lock is not taken from anyone). */
export const release = async (held: Held): Promise<void> => {
  const current = await holderOf(held.file).catch(() => undefined)
  if (current?.nonce === held.nonce) await fs.unlink(held.file).catch(() => undefined)
}

/**
 * One try at the lock, held for the scope when taken. It cannot be interrupted half way, so a
 * lock taken is always released with the scope.
 */
export const attempt = (file: string): Effect.Effect<Held | undefined, Error, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) =>
    Effect.uninterruptible(
      Effect.tryPromise({ try: () => tryAcquire(file), catch: toError }).pipe(
        Effect.tap((held) => held === undefined ? Effect.void : Scope.addFinalizer(scope, Effect.promise(() => release(held))))
      )
    ))

/** The pauses of a wait for a lock: 2 ms growing by half up to 100 ms, so a short hold is noticed at once and a long one costs little. */
export const pollBackoff: Backoff.Policy = { base: 2, factor: 1.5, cap: 100, jitter: Backoff.none }

/**
 * Waits for the lock, polling (files give no wake-up), and holds it for the scope. The wait can
 * be interrupted between attempts.
 */
export const acquire = (file: string): Effect.Effect<Held, Error, Scope.Scope> =>
  Effect.gen(function* () {
    for (let polls = 1;; polls++) {
      const held = yield* attempt(file)
      if (held !== undefined) return held
      yield* Effect.sleep(Backoff.delayFor(pollBackoff, polls, 0))
    }
  })

const toError = (e: unknown) => e instanceof Error ? e : new Error(String(e))
