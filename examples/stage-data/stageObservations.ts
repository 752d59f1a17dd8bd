/**
 * Staging data for a pipeline with @ccat/client: ask for archived observations at a PROCESSING
 * location, wait until the data center has recalled, unpacked and verified them there, and get
 * the absolute local paths to process. The wait polls with backoff (a tape recall may take
 * hours), reports progress, and a request the server failed is an error with its reason.
 *
 * Before processing, each file's size is checked against the catalog (cheap); with `verify`, its
 * SHA-256 too (the staging already verified it; this guards against what happened since). Once
 * processing is done, `releaseStaging` gives the space back (the CLI: `ccat staging release ID`).
 *
 *   CCAT_URL=http://ccat.example.org:8080 CCAT_TOKEN=ccat_... CCAT_PROCESSING=cologne-processing \
 *   npx tsx examples/stage-data/stageObservations.ts <observation id> [<observation id> ...]
 */
import { createClient } from "@ccat/client"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import { pathToFileURL } from "node:url"

/** What to stage, where, and how long to wait. */
export interface StageOptions {
  /** The server, without `/api/v1`. */
  readonly baseUrl: string
  /** A scientist token for the observations' program (`ccat token create --role scientist --program ...`). */
  readonly token: string
  /** The short name of the PROCESSING location the pipeline runs beside. */
  readonly location: string
  /** The ExecutedObsUnits to stage, whole. */
  readonly observationIds: ReadonlyArray<string>
  /** Give up waiting after this many milliseconds (the request goes on; default: no limit). */
  readonly timeoutMs?: number | undefined
  /** Also compare each file's SHA-256 with the catalog before handing it out. */
  readonly verify?: boolean | undefined
  /** Progress lines (default: none). */
  readonly log?: ((line: string) => void) | undefined
  /** First pause between polls in milliseconds (default 1000). */
  readonly pollBaseMs?: number | undefined
}

/** A staged file, ready for the pipeline. */
export interface LocalFile {
  readonly path: string
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: string
}

const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    createReadStream(file).on("data", (c) => hash.update(c)).on("error", reject).on("end", () => resolve(`sha256:${hash.digest("hex")}`))
  })

/** Stages the observations and answers their files' local paths, checked against the catalog. */
export const stageObservations = async (
  o: StageOptions
): Promise<{ readonly requestId: string; readonly expiresAt: Date | null; readonly files: ReadonlyArray<LocalFile> }> => {
  const log = o.log ?? (() => {})
  const ccat = await createClient({ baseUrl: o.baseUrl, token: o.token })
  try {
    const request = await ccat.api.staging.create({ payload: { location: o.location, observationIds: [...o.observationIds] } })
    log(`staging request ${request.id}: ${o.observationIds.length} observation(s) at ${o.location}`)
    let last = ""
    const staged = await ccat.waitForStaging(request.id, {
      timeoutMs: o.timeoutMs,
      pollBaseMs: o.pollBaseMs,
      onProgress: (p) => {
        if (p.status !== last) log(`staging request ${request.id}: ${(last = p.status)}`)
      }
    })
    const files: Array<LocalFile> = []
    for (const f of staged.files) {
      if (f.localPath === null) throw new Error(`${o.location} is not a local disk: read ${f.key} through its storage instead`)
      const { size } = await fs.stat(f.localPath)
      if (size !== f.sizeBytes) throw new Error(`${f.localPath} has ${size} bytes, the catalog says ${f.sizeBytes}`)
      if (o.verify === true && (await sha256(f.localPath)) !== f.checksum) {
        throw new Error(`${f.localPath} does not match its checksum ${f.checksum}`)
      }
      files.push({ path: f.localPath, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum })
    }
    log(`staged ${files.length} files, kept until ${staged.expiresAt?.toISOString() ?? "no expiry"} or until released`)
    return { requestId: request.id, expiresAt: staged.expiresAt, files }
  } finally {
    await ccat.close()
  }
}

/**
 * Releases a staging request once processing is done: its folder is removed and the staged files
 * no other request needs are deleted by cleanup. Releasing twice is harmless.
 */
export const releaseStaging = async (
  o: { readonly baseUrl: string; readonly token: string; readonly requestId: string }
): Promise<Date | null> => {
  const ccat = await createClient({ baseUrl: o.baseUrl, token: o.token })
  try {
    const released = await ccat.api.staging.release({ path: { id: o.requestId as never } })
    return released.releasedAt === null ? null : new Date(released.releasedAt.epochMillis)
  } finally {
    await ccat.close()
  }
}

// Run from the command line: observation ids are the arguments, the rest comes from the environment.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const env = (name: string) => {
    const v = process.env[name]
    if (v === undefined || v === "") throw new Error(`set ${name}`)
    return v
  }
  stageObservations({
    baseUrl: env("CCAT_URL"),
    token: env("CCAT_TOKEN"),
    location: env("CCAT_PROCESSING"),
    observationIds: process.argv.slice(2),
    verify: process.env.CCAT_VERIFY === "1",
    log: (line) => console.error(line)
  }).then(
    (r) => {
      for (const f of r.files) console.log(f.path)
    },
    (e) => {
      console.error(`staging failed: ${e instanceof Error ? e.message : String(e)}`)
      process.exitCode = 1
    }
  )
}
