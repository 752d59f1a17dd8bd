/**
 * Filing an observation with @ccat/client: what an instrument team copies into its data
 * acquisition. After a scan has written its files under the SOURCE location, this files the
 * ExecutedObsUnit, its RawDataFiles in batches of 1,000 (size and SHA-256 of each), and closes
 * it. Everything goes through the client's durable outbox, so a server or network outage only
 * delays the filing: it is delivered in order, once, when the link is back, even across
 * restarts of this process.
 *
 * Ids are derived from the scan's name and each file's path (name-based UUIDs), so running this
 * twice for the same scan files the same things, and the server answers the repeat with what it
 * stored instead of filing twice.
 *
 *   CCAT_URL=http://ccat.example.org:8080 CCAT_TOKEN=ccat_... CCAT_OBS_UNIT=<uuid> \
 *   CCAT_SOURCE_LOCATION=chile-source CCAT_MODULE=280GHz npx tsx examples/file-observation/fileScan.ts /data/source/scan-0017
 */
import { createClient } from "@ccat/client"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/** What the filing needs to know. */
export interface ScanOptions {
  /** The server, without `/api/v1`. */
  readonly baseUrl: string
  /** An instrument token (`ccat token create --role instrument --instrument ...`). */
  readonly token: string
  /** The planned observation (ObsUnit) this scan executes. */
  readonly obsUnitId: string
  /** The short name of the SOURCE location the scan's folder is in. */
  readonly sourceLocation: string
  /** The root folder of that SOURCE location; file paths are filed relative to it. */
  readonly sourceRoot: string
  /** The scan's folder, inside `sourceRoot`. */
  readonly scanDir: string
  /** The instrument module that wrote the files. */
  readonly module: string
  /** Where the outbox keeps filings until the server has them (one per DAQ process). */
  readonly outboxDir: string
  readonly startAt: Date
  readonly endAt: Date
  readonly metadata?: Record<string, unknown>
}

/** A name-based UUID (version 5 layout, SHA-1), so the same scan and path always get the same id. */
export const nameUuid = (namespace: string, name: string): string => {
  const h = createHash("sha1").update(namespace).update("\0").update(name).digest()
  h[6] = (h[6] & 0x0f) | 0x50
  h[8] = (h[8] & 0x3f) | 0x80
  const hex = h.subarray(0, 16).toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Every regular file under a folder, sorted. */
const walk = async (dir: string): Promise<Array<string>> => {
  const out: Array<string> = []
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await walk(full)))
    else if (entry.isFile()) out.push(full)
  }
  return out.sort()
}

/** The SHA-256 of a file, streamed, as the ops-db stores it. */
const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(file).on("data", (c) => hash.update(c)).on("error", reject).on("end", () => resolve(`sha256:${hash.digest("hex")}`))
  })

/** Files one scan; resolves once the server has every filing (or rejects with why not). */
export async function fileScan(o: ScanOptions): Promise<{ readonly observationId: string; readonly files: number }> {
  const relativeScan = path.relative(o.sourceRoot, o.scanDir).split(path.sep).join("/")
  const observationId = nameUuid(o.obsUnitId, relativeScan)
  const ccat = await createClient({ baseUrl: o.baseUrl, token: o.token, outboxDir: o.outboxDir })
  try {
    // 1. The observation, open (no end yet): the files follow in batches.
    await ccat.fileObservation({
      id: observationId,
      obsUnitId: o.obsUnitId,
      startAt: o.startAt,
      metadata: { scan: relativeScan, ...o.metadata }
    })
    // 2. Its files, 1,000 per request: each with its id, module, path, size and checksum.
    const paths = await walk(o.scanDir)
    for (let i = 0; i < paths.length; i += 1000) {
      const files = await Promise.all(
        paths.slice(i, i + 1000).map(async (full) => {
          const relativePath = path.relative(o.sourceRoot, full).split(path.sep).join("/")
          return {
            id: nameUuid(observationId, relativePath),
            module: o.module,
            relativePath,
            sizeBytes: (await fs.stat(full)).size,
            checksum: await sha256(full)
          }
        })
      )
      await ccat.addFiles(observationId, { sourceLocation: o.sourceLocation, files })
    }
    // 3. Closed: its end and final status.
    await ccat.closeObservation(observationId, { endAt: o.endAt, status: "completed" })
    // The outbox delivers in the background; wait until the server confirmed everything.
    if (!(await ccat.outbox.flush(60_000))) {
      throw new Error(`the server did not take the filings within a minute; they stay queued in ${o.outboxDir}`)
    }
    const dead = await ccat.outbox.deadLetters()
    if (dead.length > 0) throw new Error(`the server refused ${dead.length} filing(s): ${JSON.stringify(dead.map((d) => d.reason))}`)
    return { observationId, files: paths.length }
  } finally {
    await ccat.close()
  }
}

// Run from the command line: the scan folder is the argument, the rest comes from the environment.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const env = (name: string) => {
    const v = process.env[name]
    if (v === undefined || v === "") throw new Error(`set ${name}`)
    return v
  }
  const scanDir = path.resolve(process.argv[2] ?? ".")
  fileScan({
    baseUrl: env("CCAT_URL"),
    token: env("CCAT_TOKEN"),
    obsUnitId: env("CCAT_OBS_UNIT"),
    sourceLocation: env("CCAT_SOURCE_LOCATION"),
    sourceRoot: process.env.CCAT_SOURCE_ROOT ?? path.dirname(scanDir),
    scanDir,
    module: env("CCAT_MODULE"),
    outboxDir: process.env.CCAT_OUTBOX ?? path.join(process.env.HOME ?? ".", ".ccat-outbox"),
    startAt: new Date(process.env.CCAT_START ?? Date.now()),
    endAt: new Date(process.env.CCAT_END ?? Date.now())
  }).then(
    (r) => console.log(`filed observation ${r.observationId} with ${r.files} files`),
    (e) => {
      console.error(`filing failed: ${e instanceof Error ? e.message : String(e)}`)
      process.exitCode = 1
    }
  )
}
