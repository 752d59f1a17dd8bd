/**
 * Who runs the PostgreSQL of a data folder, recorded beside it, so a second process on the same
 * folder uses the first one's server instead of starting another.
 */
import * as fs from "node:fs/promises"
import { pidAlive } from "./PostgresProcess.js"

/** Who runs the server of a data folder: kept beside it, so a second process finds the first. */
export interface OwnerRecord {
  readonly pid: number
  /** The owner's start time in clock ticks since boot: a recycled pid is not the owner. */
  readonly startTicks: string
  /** The postmaster's port, once it accepts connections; null while it starts. */
  readonly port: number | null
  readonly postmasterPid: number | null
}

/** A process's start time in clock ticks since boot (from /proc), or undefined. */
export const startTicksOf = async (pid: number): Promise<string | undefined> => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
  // Field 22 (starttime); the command name in field 2 may hold spaces, so count after its ")".
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

/** Whether the owner recorded is still the live process it was (not a recycled pid). */
export const ownerAlive = async (owner: OwnerRecord): Promise<boolean> =>
  pidAlive(owner.pid) && (await startTicksOf(owner.pid)) === owner.startTicks

/** The owner record of a data folder, or undefined when there is none or only half of one. */
export const readOwner = (file: string): Promise<OwnerRecord | undefined> =>
  fs.readFile(file, "utf8").then(
    (text) => {
      try {
        return JSON.parse(text) as OwnerRecord
      } catch {
        // A process killed while writing it left half a record: nobody owns the folder.
        return undefined
      }
    },
    () => undefined
  )

/** Replaces the owner record atomically. */
export const writeOwner = (file: string, record: OwnerRecord): Promise<void> =>
  fs.writeFile(`${file}.${process.pid}.tmp`, JSON.stringify(record), { mode: 0o600 }).then(() =>
    fs.rename(`${file}.${process.pid}.tmp`, file)
  )
