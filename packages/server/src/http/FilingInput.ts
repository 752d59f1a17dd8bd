/**
 * Reading a filing's body. Decoding ten thousand files with the contract's Schema costs more
 * than storing them, so a body is first checked by plain code against the same rules
 * (`RelativePath.problemOfNew`, `Checksum.problem`, the UUID and size rules): a body that passes
 * is taken as the Schema would decode it. Anything else, however small the doubt, is decoded
 * by the contract's Schema itself, so a bad request fails with exactly the contract's 400 and
 * its issues naming the field. The header fields of a request (the observation) are always
 * decoded by the Schema: they are few.
 */
import { ApiPayload, Checksum, ObservationsApi, RelativePath } from "@ccat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/**
 * Paths plainly within the rules: ASCII segments of letters, digits and `._+=,@~-` that do not
 * start with a dot (so no `.`, `..`, or temporary name), joined by single slashes. Any other path
 * is judged by `RelativePath.problemOfNew` itself.
 */
const plainPath = /^[A-Za-z0-9_+=,@~-][A-Za-z0-9._+=,@~-]*(?:\/[A-Za-z0-9_+=,@~-][A-Za-z0-9._+=,@~-]*)*$/

/** The commonest checksum, plainly within `Checksum.problem`'s rule; others are judged by the rule. */
const plainChecksum = /^sha256:[0-9a-f]{64}$/

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The files as the Schema would decode them, or undefined when any of them needs the Schema's verdict. */
export const quickFiles = (input: unknown): ReadonlyArray<ObservationsApi.FileSpec> | undefined => {
  if (!Array.isArray(input) || input.length > ObservationsApi.maxFilesPerRequest) return undefined
  const out = new Array<ObservationsApi.FileSpec>(input.length)
  for (let i = 0; i < input.length; i++) {
    const f: unknown = input[i]
    // exactly the five fields a file has: anything else is the Schema's to refuse by name
    if (!isRecord(f) || Object.keys(f).length !== 5) return undefined
    const { checksum, id, module, relativePath, sizeBytes } = f
    if (typeof id !== "string" || !uuid.test(id)) return undefined
    if (typeof module !== "string" || module.length === 0 || module.length > 200) return undefined
    if (typeof relativePath !== "string") return undefined
    if (
      !(relativePath.length <= RelativePath.maxBytes && plainPath.test(relativePath)) &&
      RelativePath.problemOfNew(relativePath) !== undefined
    ) return undefined
    if (typeof sizeBytes !== "number" || !Number.isSafeInteger(sizeBytes) || sizeBytes < 0) return undefined
    if (typeof checksum !== "string" || (!plainChecksum.test(checksum) && Checksum.problem(checksum) !== undefined)) return undefined
    out[i] = { id, module, relativePath, sizeBytes, checksum }
  }
  return out
}

// omit makes a new struct: the contract's strictness is given to it again
const ObservationHeader = ObservationsApi.FileObservation.pipe(Schema.omit("files")).annotations(ApiPayload.strict)
const decodeHeader = Schema.decodeUnknown(ObservationHeader)
const decodeObservation = Schema.decodeUnknown(ObservationsApi.FileObservation)
const decodeSource = Schema.decodeUnknown(ObservationsApi.LocationName)
const decodeAddFiles = Schema.decodeUnknown(ObservationsApi.AddFiles)

/**
 * The body as the platform reads it for a JSON endpoint (other content types as it reads them,
 * for the Schema to refuse); unreadable bodies are defects, which the body-limit middleware
 * turns into the contract's 400 and 413.
 */
export const body = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const contentType = (request.headers["content-type"] ?? "application/json").toLowerCase().trim()
  if (contentType.includes("application/json")) return yield* Effect.orDie(request.json)
  if (contentType.startsWith("text/")) return yield* Effect.orDie(request.text)
  return new Uint8Array(yield* Effect.orDie(request.arrayBuffer))
})

/** A `POST /observations` body decoded; fails with the contract's ParseError. */
export const fileObservation = (input: unknown): Effect.Effect<ObservationsApi.FileObservation, ParseResult.ParseError> =>
  Effect.gen(function* () {
    if (!isRecord(input)) return yield* decodeObservation(input)
    const files = input.files === undefined ? undefined : quickFiles(input.files)
    if (input.files !== undefined && files === undefined) return yield* decodeObservation(input)
    const { files: _files, ...rest } = input
    const header = yield* decodeHeader(rest).pipe(Effect.option)
    if (header._tag === "None") return yield* decodeObservation(input)
    return files === undefined ? header.value : { ...header.value, files }
  })

/** A `POST /observations/{id}/files` body decoded; fails with the contract's ParseError. */
export const addFiles = (input: unknown): Effect.Effect<typeof ObservationsApi.AddFiles.Type, ParseResult.ParseError> =>
  Effect.gen(function* () {
    if (!isRecord(input) || Object.keys(input).some((k) => k !== "files" && k !== "sourceLocation")) return yield* decodeAddFiles(input)
    const files = quickFiles(input.files)
    const source = yield* decodeSource(input.sourceLocation).pipe(Effect.option)
    if (files === undefined || files.length === 0 || source._tag === "None") return yield* decodeAddFiles(input)
    return { sourceLocation: source.value, files }
  })
