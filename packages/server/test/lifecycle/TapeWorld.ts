/**
 * Reading a tape location built from configuration the way an auditor would, beside the driver:
 * its catalog file (`<root>/catalog.json`, what a restarted server reads) and the virtual
 * library's volumes (`<root>/library/<label>.vol` with the file marks in `<label>.marks.json`),
 * so a test checks that bytes are on tape without asking the driver under test.
 */
import { Checksum } from "@ccat/core"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** Where the tape driver says an object is. */
export interface CatalogEntry {
  readonly volume: string
  readonly fileNumber: number
  readonly size: number
  readonly cacheId: string
}

/** The objects of a tape location's catalog, by key. */
export const catalogOf = async (root: string): Promise<Readonly<Record<string, CatalogEntry>>> =>
  (JSON.parse(await fs.readFile(path.join(root, "catalog.json"), "utf8")) as { objects: Record<string, CatalogEntry> }).objects

/**
 * The sha256 of an object as it is on its virtual volume: the tape file its catalog entry names,
 * cut from the volume by that file's mark. Throws when the catalog or the volume lacks it.
 */
export const checksumOnTape = async (root: string, key: string): Promise<Checksum.Checksum> => {
  const entry = (await catalogOf(root))[key]
  if (entry === undefined) throw new Error(`${key} is not in the tape catalog under ${root}`)
  const library = path.join(root, "library")
  const marks = JSON.parse(await fs.readFile(path.join(library, `${entry.volume}.marks.json`), "utf8")) as Array<
    { offset: number; size: number }
  >
  const mark = marks[entry.fileNumber]
  if (mark === undefined) throw new Error(`${entry.volume} has no tape file ${entry.fileNumber} (${key})`)
  if (mark.size !== entry.size) {
    throw new Error(`${key}: the catalog says ${entry.size} bytes, tape file ${entry.fileNumber} of ${entry.volume} holds ${mark.size}`)
  }
  const volume = await fs.open(path.join(library, `${entry.volume}.vol`), "r")
  try {
    const hash = createHash("sha256")
    if (mark.size > 0) {
      for await (const chunk of volume.createReadStream({ start: mark.offset, end: mark.offset + mark.size - 1, autoClose: false })) {
        hash.update(chunk as Buffer)
      }
    }
    return Checksum.make("sha256", hash.digest("hex"))
  } finally {
    await volume.close()
  }
}

/** Regular files below a folder, by name (none when it does not exist). */
export const fileNamesIn = async (root: string): Promise<Array<string>> =>
  (await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile()).map((e) => e.name)
