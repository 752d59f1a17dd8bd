/**
 * An exclusive lock file, so two processes never drain one outbox at once. Node has no flock,
 * so the lock is a file created with O_EXCL holding who owns it; a lock whose owner is gone
 * (same host, process dead or its pid reused by another process) is stale and is taken over.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { readFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { syncDirectory } from "./RecordLog.js"

/** What the lock file says about its owner. */
export interface Owner {
  readonly pid: number
  readonly host: string
  readonly nonce: string
  /** The owner's start time in clock ticks since boot (Linux), so a reused pid is not mistaken for it. */
  readonly startTicks?: string | undefined
  readonly acquiredAt: string
}

/** Lock files this process holds, so opening one outbox twice in a process is refused too. */
const heldHere = new Set<string>()

const startTicks = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Whether the owner is certainly gone; an owner on another host is never assumed gone. */
export const isStale = (file: string, owner: Owner): boolean => {
  if (owner.host !== os.hostname()) return false
  if (owner.nonce.startsWith("unreadable-")) return owner.pid === 0
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return true
  if (owner.pid === process.pid) return !heldHere.has(file)
  if (!alive(owner.pid)) return true
  const now = startTicks(owner.pid)
  return owner.startTicks !== undefined && now !== undefined && now !== owner.startTicks
}

/** How long an unreadable lock file may be in the making before it counts as left by a crash. */
const unreadableGraceMs = 5_000

const readOwner = async (file: string): Promise<Owner | undefined> => {
  try {
    return JSON.parse(await fs.readFile(file, "utf8")) as Owner
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
    // Empty or cut short: either its owner is writing it right now, or it died doing so.
    const stat = await fs.stat(file).catch(() => undefined)
    if (stat === undefined) return undefined
    const dying = Date.now() - stat.mtimeMs > unreadableGraceMs
    return { pid: dying ? 0 : process.pid, host: os.hostname(), nonce: `unreadable-${stat.mtimeMs}`, acquiredAt: stat.mtime.toISOString() }
  }
}

/** The result of one attempt: the lock, or who holds it. */
export type Attempt = { readonly _tag: "Acquired"; readonly owner: Owner } | { readonly _tag: "Held"; readonly owner: Owner }

/** Tries once to take the lock, taking over a stale one. */
export const tryAcquire = async (file: string): Promise<Attempt> => {
  const owner: Owner = {
    pid: process.pid,
    host: os.hostname(),
    nonce: randomUUID(),
    startTicks: startTicks(process.pid),
    acquiredAt: new Date().toISOString()
  }
  for (let round = 0; round < 3; round++) {
    try {
      const handle = await fs.open(file, "wx")
      try {
        await handle.writeFile(JSON.stringify(owner))
        await handle.sync()
      } finally {
        await handle.close()
      }
      await syncDirectory(path.dirname(file))
      heldHere.add(file)
      return { _tag: "Acquired", owner }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
    const current = await readOwner(file)
    if (current === undefined) continue
    if (!isStale(file, current)) return { _tag: "Held", owner: current }
    // Take the stale lock aside by rename (atomic), then check that what we moved is the
    // stale lock we judged and not a fresh one another process made in between.
    const aside = `${file}.stale-${owner.nonce}`
    try {
      await fs.rename(file, aside)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue
      throw e
    }
    const moved = await readOwner(aside)
    if (moved !== undefined && moved.nonce !== current.nonce) {
      await fs.link(aside, file).catch(() => undefined)
      await fs.rm(aside, { force: true })
      return { _tag: "Held", owner: moved }
    }
    await fs.rm(aside, { force: true })
  }
  const current = await readOwner(file)
  return { _tag: "Held", owner: current ?? { pid: -1, host: "?", nonce: "", acquiredAt: "" } }
}

/** Whether this process still owns the lock (nobody took it over). */
export const stillHeld = async (file: string, owner: Owner): Promise<boolean> => (await readOwner(file))?.nonce === owner.nonce

/** Gives the lock up, if it is still ours. */
export const release = async (file: string, owner: Owner): Promise<void> => {
  heldHere.delete(file)
  if (await stillHeld(file, owner)) await fs.rm(file, { force: true })
}
