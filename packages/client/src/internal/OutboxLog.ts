/**
 * The outbox's files and what their records mean: `outbox.log` holds items and their
 * acknowledgements (`done`, `dead`), `dead-letters.log` the refused items with reasons. Opening
 * replays them into the pending queue and repairs what a crash left behind.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { Entry } from "../Outbox.js"
import * as RecordLog from "./RecordLog.js"

/** An item waiting in the queue, in its stored (encoded) form. */
export interface StoredItem {
  readonly entry: Entry
  readonly stored: unknown
}

/** A record of the log. */
export type LogRecord =
  | { readonly t: "item"; readonly id: string; readonly key?: string | undefined; readonly at: string; readonly item: unknown }
  | { readonly t: "done"; readonly id: string }
  | { readonly t: "dead"; readonly id: string }

/** A record of the dead-letter file. */
export interface DeadRecord {
  readonly id: string
  readonly key?: string | undefined
  readonly at: string
  readonly deadAt: string
  readonly status?: number | undefined
  readonly reason: string
  readonly attempts: number
  readonly item: unknown
}

/** The outbox's file names in its folder. */
export const files = (directory: string) => ({
  log: path.join(directory, "outbox.log"),
  dead: path.join(directory, "dead-letters.log"),
  lock: path.join(directory, "outbox.lock")
})

/** A value as a record payload. */
export const json = (value: LogRecord | DeadRecord): Uint8Array => Buffer.from(JSON.stringify(value), "utf8")

/** An item as its log record. */
export const itemRecord = (p: StoredItem): Uint8Array =>
  json({ t: "item", id: p.entry.id, key: p.entry.key, at: p.entry.enqueuedAt, item: p.stored })

const parse = <T>(payload: Buffer): T | undefined => {
  try {
    return JSON.parse(payload.toString("utf8")) as T
  } catch {
    return undefined
  }
}

/** Rewrites the log with only the pending items (atomically: temporary file, fsync, rename). */
export const compact = (logFile: string, pending: Iterable<StoredItem>): Promise<void> =>
  RecordLog.replace(logFile, Array.from(pending, itemRecord))

/** What opening found. */
export interface Recovered {
  readonly pending: ReadonlyArray<StoredItem>
  /** Acknowledgement records still in the log (what compaction would remove). */
  readonly acknowledged: number
  readonly deadLetters: number
  readonly tornBytes: number
  readonly corruptRanges: number
}

/**
 * Replays the log into the pending queue, repairing what a crash left: a leftover compaction
 * file is removed, torn tails are cut off, damaged ranges are copied to `corrupt-*.bin` (and the
 * log rewritten without them), and an item dead-lettered whose marker never reached the log is
 * marked now instead of being delivered again.
 */
export const recover = async (directory: string): Promise<Recovered> => {
  const { dead: deadFile, log: logFile } = files(directory)
  await fs.rm(`${logFile}.tmp`, { force: true })
  const dead = await RecordLog.read(deadFile)
  if (dead.scan.validEnd < dead.size) await RecordLog.truncate(deadFile, dead.scan.validEnd)
  const deadIds = new Set(dead.scan.records.map((r) => parse<DeadRecord>(r)?.id))

  const log = await RecordLog.read(logFile)
  const tornBytes = log.size - log.scan.validEnd
  if (tornBytes > 0) await RecordLog.truncate(logFile, log.scan.validEnd)
  let corruptRanges = log.scan.corrupt.length
  if (corruptRanges > 0) {
    const buf = await fs.readFile(logFile)
    await RecordLog.replace(path.join(directory, `corrupt-${Date.now()}.bin`), log.scan.corrupt.map(([s, e]) => buf.subarray(s, e)))
  }

  const byId = new Map<string, StoredItem>()
  let acknowledged = 0
  for (const payload of log.scan.records) {
    const record = parse<LogRecord>(payload)
    if (record === undefined || typeof record.id !== "string") {
      corruptRanges++
    } else if (record.t === "item") {
      byId.set(record.id, { entry: { id: record.id, key: record.key, enqueuedAt: record.at }, stored: record.item })
    } else {
      byId.delete(record.id)
      acknowledged++
    }
  }
  const halfDead = [...byId.keys()].filter((id) => deadIds.has(id))
  for (const id of halfDead) byId.delete(id)
  const pending = [...byId.values()]
  if (corruptRanges > 0 || halfDead.length > 0) {
    await compact(logFile, pending)
    acknowledged = 0
  }
  return { pending, acknowledged, deadLetters: dead.scan.records.length, tornBytes, corruptRanges }
}

/** The dead letters as stored, oldest first. */
export const readDeadLetters = async (deadFile: string): Promise<ReadonlyArray<DeadRecord>> =>
  (await RecordLog.read(deadFile)).scan.records.flatMap((r) => {
    const record = parse<DeadRecord>(r)
    return record === undefined ? [] : [record]
  })
