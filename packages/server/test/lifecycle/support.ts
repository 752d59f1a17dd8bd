/**
 * Fixtures for the packaging tests: filed files written to a real SOURCE folder with their real
 * checksums, temporary folders, and GNU tar run as a child process.
 */
import { Checksum, Ids, RelativePath } from "@ccat/core"
import { execFile } from "node:child_process"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { assert } from "vitest"
import type * as Packager from "../../src/lifecycle/Packager.js"

/** A fresh temporary folder. */
export const tempDir = (name: string) => fs.mkdtemp(path.join(os.tmpdir(), `ccat-${name}-`))

/** The sha256 checksum of some bytes, as the ops-db stores it. */
export const sha256 = (bytes: Uint8Array): Checksum.Checksum => Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))

/** The sha256 checksum of a file on disk. */
export const sha256File = async (file: string): Promise<Checksum.Checksum> => {
  const hash = createHash("sha256")
  const fh = await fs.open(file, "r")
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  } finally {
    await fh.close()
  }
  return Checksum.make("sha256", hash.digest("hex"))
}

/** One filed file of a fixture: a RawDataFile-shaped record and its bytes on disk. */
export interface FiledFile extends Packager.FileToPlan {
  readonly bytes: Uint8Array
}

/** A new id of the branded kind. */
export const uuid = <A>() => randomUUID() as A

/**
 * Writes files with random contents (or the given sizes) under `root` and returns them as filed
 * records of one ExecutedObsUnit and InstrumentModule.
 */
export const fileAll = async (
  root: string,
  specs: ReadonlyArray<{ readonly path: string; readonly size: number }>,
  group: { readonly executedObsUnitId: Ids.ExecutedObsUnitId; readonly instrumentModuleId: Ids.InstrumentModuleId } = {
    executedObsUnitId: uuid(),
    instrumentModuleId: uuid()
  }
): Promise<Array<FiledFile>> => {
  const out: Array<FiledFile> = []
  for (const spec of specs) {
    const bytes = randomBytes(spec.size)
    await fs.mkdir(path.dirname(path.join(root, spec.path)), { recursive: true })
    await fs.writeFile(path.join(root, spec.path), bytes)
    out.push({
      id: uuid<Ids.RawDataFileId>(),
      relativePath: spec.path as RelativePath.RelativePath,
      sizeBytes: spec.size,
      checksum: sha256(bytes),
      bytes,
      ...group
    })
  }
  return out
}

/** Runs GNU tar with arguments; resolves with its stdout, rejects on a non-zero exit. */
export const gnuTar = async (args: ReadonlyArray<string>): Promise<string> =>
  (await promisify(execFile)("tar", [...args], { maxBuffer: 64 * 1024 * 1024 })).stdout

/** Every regular file under a folder, as relative paths, sorted. */
export const listFiles = async (root: string): Promise<Array<string>> => {
  const out: Array<string> = []
  for (const entry of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.push(path.relative(root, path.join(entry.parentPath, entry.name)))
  }
  return out.sort()
}

/**
 * Lists each archived tar and unpacks it into `unpacked`, then asserts that every filed file is in
 * exactly one of them and unpacks at its filed checksum. Returns how many tars hold each member.
 */
export const filedOnceIn = async (
  tars: ReadonlyArray<string>,
  filed: ReadonlyArray<{ readonly relativePath: string; readonly checksum: string }>,
  unpacked: string
): Promise<Map<string, number>> => {
  const seen = new Map<string, number>()
  await fs.mkdir(unpacked, { recursive: true })
  for (const tar of tars) {
    for (const member of (await gnuTar(["-tf", tar])).split("\n").filter((m) => m !== "" && !m.endsWith("/"))) {
      seen.set(member, (seen.get(member) ?? 0) + 1)
    }
    await gnuTar(["-xf", tar, "-C", unpacked])
  }
  for (const f of filed) {
    assert.strictEqual(seen.get(f.relativePath), 1, `${f.relativePath} is in exactly one package`)
    assert.strictEqual(await sha256File(path.join(unpacked, f.relativePath)), f.checksum, `${f.relativePath} archived intact`)
  }
  return seen
}
