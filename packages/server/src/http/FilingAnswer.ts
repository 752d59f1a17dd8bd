/**
 * A filing's answer written as JSON directly: the contract's `FiledObservation` and `FiledFiles`
 * with every stored file, in the field order and formats the contract's Schema encodes them
 * (ISO timestamps, sizes as numbers), but without decoding rows into classes and encoding them
 * back, which for ten thousand files cost more than storing them. The observation, a single
 * record, goes through the Schema as before.
 */
import { Observational } from "@ccat/core"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** A file as the answer states it; timestamps as the database returned them. */
export interface StoredFile {
  readonly id: string
  readonly executedObsUnitId: string
  readonly instrumentModuleId: string
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: string
  readonly sourceLocationId: string
  readonly rawDataPackageId: string | null
  readonly state: string
  readonly filedAt: Date
  readonly updatedAt: Date
}

const encodeObservation = Schema.encode(Observational.ExecutedObsUnit.json)

/**
 * The files as the contract's JSON array, in the given order. Ids, checksums, states and
 * timestamps cannot need escaping (the database's types and the contract's rules say so); paths
 * are escaped by `JSON.stringify`. The same instant is formatted once.
 */
export const filesJson = (files: ReadonlyArray<StoredFile>): string => {
  const instants = new Map<number, string>()
  const iso = (d: Date) => {
    const t = d.getTime()
    let s = instants.get(t)
    if (s === undefined) instants.set(t, s = d.toISOString())
    return s
  }
  const parts = new Array<string>(files.length)
  for (let i = 0; i < files.length; i++) {
    const f = files[i]
    // Key order and formats are those of `RawDataFile.json`'s encoding.
    parts[i] = `{"id":"${f.id}","executedObsUnitId":"${f.executedObsUnitId}","instrumentModuleId":"${f.instrumentModuleId}",` +
      `"relativePath":${
        JSON.stringify(f.relativePath)
      },"sizeBytes":${f.sizeBytes},"checksum":"${f.checksum}","sourceLocationId":"${f.sourceLocationId}",` +
      `"rawDataPackageId":${f.rawDataPackageId === null ? "null" : `"${f.rawDataPackageId}"`},"state":"${f.state}",` +
      `"filedAt":"${iso(f.filedAt)}","updatedAt":"${iso(f.updatedAt)}"}`
  }
  return `[${parts.join(",")}]`
}

const json = (text: string) => HttpServerResponse.text(text, { contentType: "application/json" })

/** The answer to `POST /observations`: the observation and the files of the request as stored. */
export const filedObservation = (observation: Observational.ExecutedObsUnit, files: ReadonlyArray<StoredFile>) =>
  Effect.map(Effect.orDie(encodeObservation(observation)), (o) => json(`{"observation":${JSON.stringify(o)},"files":${filesJson(files)}}`))

/** The answer to `POST /observations/{id}/files`: the files of the request as stored. */
export const filedFiles = (files: ReadonlyArray<StoredFile>) => json(`{"files":${filesJson(files)}}`)
