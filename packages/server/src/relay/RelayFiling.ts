/**
 * Filing at the relay: the request is decoded by the same contract as at the main, checked
 * against the reference data (the ObsUnit and its instrument, the caller's grant, the SOURCE
 * location, the modules, the request's own duplicates and reserved names), written durably to
 * the relay's store, and answered at once with what the main will store: the answer means
 * "accepted by the relay", not yet by the main (its timestamps are the relay's). Conflicts with
 * what the main already holds (a different re-file, a held path) can only be found by the main;
 * such a filing is refused there later and kept at the relay with the main's reason.
 *
 * Additions and closes are taken for observations filed through this relay (their instrument is
 * known here); others are a 404 saying to send them to the main. Reads are the main's.
 */
import { ApiErrors, ApiSecurity, Observational, ObservationsApi, RawData } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import { authorizeInstrument, checkFileSpecs, requestFolders } from "../http/Filing.js"
import { CurrentReference } from "./RelayAuth.js"
import type { Reference } from "./Reference.js"
import { RelayApi } from "./RelayApi.js"
import * as RelayStore from "./RelayStore.js"

const unprocessable = (reason: ApiErrors.Unprocessable["reason"], field: string, message: string) =>
  new ApiErrors.Unprocessable({ reason, field, message })

const decodeObservation = Schema.decodeUnknownSync(Observational.ExecutedObsUnit.json)
const decodeFiles = Schema.decodeUnknownSync(Schema.Array(RawData.RawDataFile.json))
const encodeFile = Schema.encodeSync(ObservationsApi.FileObservation)
const decodeFile = Schema.decodeUnknownSync(ObservationsApi.FileObservation)
const encodeAdd = Schema.encodeSync(ObservationsApi.AddFiles)
const encodeClose = Schema.encodeSync(ObservationsApi.CloseObservation)

/** Checks files as the main would before touching its tables; answers the rows the main will store. */
const checkFiles = (
  reference: Reference,
  instrumentId: string,
  observationId: string,
  sourceLocation: string,
  files: ReadonlyArray<ObservationsApi.FileSpec>,
  now: string
) =>
  Effect.gen(function* () {
    const location = reference.locations.find((l) => l.name === sourceLocation)
    const modules = new Map(reference.modules.filter((m) => m.instrumentId === instrumentId).map((m) => [m.name, m.id]))
    const checked = yield* checkFileSpecs(sourceLocation, location, modules, files)
    yield* requestFolders(files.map((f) => f.relativePath))
    const rows = checked.map(({ moduleId, spec: f }) => ({
      id: f.id,
      executedObsUnitId: observationId,
      instrumentModuleId: moduleId,
      relativePath: f.relativePath,
      sizeBytes: f.sizeBytes,
      checksum: f.checksum,
      sourceLocationId: location!.id,
      rawDataPackageId: null,
      state: "filed",
      filedAt: now,
      updatedAt: now
    }))
    return decodeFiles(rows)
  })

/** The instrument of an observation this relay took, or a 404 that says where to send the request. */
const observationHere = (id: string) =>
  Effect.flatMap(RelayStore.instrumentOfObservation(id), (instrumentId) =>
    instrumentId === undefined
      ? Effect.fail(
        new ApiErrors.NotFound({
          entity: "ExecutedObsUnit",
          id,
          message: `observation ${id} was not filed through this relay; file it here first, or send this request to the main`
        })
      )
      : Effect.succeed(instrumentId))

const accept = (p: ApiSecurity.Principal, kind: RelayStore.Kind, observationId: string, instrumentId: string, payload: unknown) =>
  RelayStore.accept({ id: randomUUID(), kind, observationId, instrumentId, accountName: p.name, payload })

/** The observations group at the relay. */
export const ObservationsRelayLive = HttpApiBuilder.group(RelayApi, "observations", (handlers) =>
  Effect.gen(function* () {
    const reference = yield* CurrentReference
    return handlers
      .handle("file", ({ payload: req }) =>
        Effect.gen(function* () {
          const p = yield* ApiSecurity.CurrentAccount
          const ref = yield* Ref.get(reference)
          const unit = ref.obsUnits.find((u) => u.id === req.obsUnitId)
          if (unit === undefined) {
            return yield* unprocessable(
              "UnknownReference",
              "obsUnitId",
              `there is no ObsUnit ${req.obsUnitId}; an admin plans it first (the relay knows ObsUnits planned before its last sync)`
            )
          }
          yield* authorizeInstrument(p, unit.instrumentId)
          const endAt = req.endAt ?? null
          if (endAt !== null && endAt.getTime() < req.startAt.getTime()) {
            return yield* unprocessable(
              "OutOfRange",
              "endAt",
              `the observation ends (${endAt.toISOString()}) before it starts (${req.startAt.toISOString()})`
            )
          }
          const files = req.files ?? []
          if (files.length > 0 && req.sourceLocation === undefined) {
            return yield* unprocessable("Invalid", "sourceLocation", "files are filed at a SOURCE location: name it in sourceLocation")
          }
          const now = new Date().toISOString()
          const rows = files.length === 0 ? [] : yield* checkFiles(ref, unit.instrumentId, req.id, req.sourceLocation!, files, now)
          yield* accept(p, "file", req.id, unit.instrumentId, encodeFile(req))
          const observation = decodeObservation({
            id: req.id,
            obsUnitId: req.obsUnitId,
            startAt: req.startAt.toISOString(),
            endAt: endAt?.toISOString() ?? null,
            status: req.status ?? (endAt === null ? "in_progress" : "completed"),
            conditions: req.conditions ?? {},
            quality: req.quality ?? "unassessed",
            metadata: req.metadata ?? {},
            createdAt: now,
            updatedAt: now
          })
          return { observation, files: rows }
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e))))
      .handle("addFiles", ({ path, payload: req }) =>
        Effect.gen(function* () {
          const p = yield* ApiSecurity.CurrentAccount
          const instrumentId = yield* observationHere(path.id)
          yield* authorizeInstrument(p, instrumentId)
          const rows = yield* checkFiles(
            yield* Ref.get(reference),
            instrumentId,
            path.id,
            req.sourceLocation,
            req.files,
            new Date().toISOString()
          )
          yield* accept(p, "addFiles", path.id, instrumentId, encodeAdd(req))
          return { files: rows }
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e))))
      .handle("close", ({ path, payload: req }) =>
        Effect.gen(function* () {
          const p = yield* ApiSecurity.CurrentAccount
          const instrumentId = yield* observationHere(path.id)
          yield* authorizeInstrument(p, instrumentId)
          const filed = yield* RelayStore.firstPayload(path.id)
          const original = decodeFile(filed)
          if (req.endAt.getTime() < original.startAt.getTime()) {
            return yield* unprocessable(
              "OutOfRange",
              "endAt",
              `the observation cannot end (${req.endAt.toISOString()}) before it started (${original.startAt.toISOString()})`
            )
          }
          yield* accept(p, "close", path.id, instrumentId, encodeClose(req))
          const now = new Date().toISOString()
          return decodeObservation({
            id: original.id,
            obsUnitId: original.obsUnitId,
            startAt: original.startAt.toISOString(),
            endAt: req.endAt.toISOString(),
            status: req.status,
            conditions: original.conditions ?? {},
            quality: req.quality ?? original.quality ?? "unassessed",
            metadata: original.metadata ?? {},
            createdAt: now,
            updatedAt: now
          })
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e))))
      .handle(
        "list",
        () =>
          Effect.fail(unprocessable("Invalid", "(relay)", "the relay at the telescope takes filings only; list observations at the main"))
      )
      .handle(
        "get",
        ({ path }) =>
          Effect.fail(
            new ApiErrors.NotFound({
              entity: "ExecutedObsUnit",
              id: path.id,
              message: "the relay at the telescope takes filings only; read observations at the main"
            })
          )
      )
  }))
