/**
 * The world the operator commands are run in: a real `ccat serve` on a fresh ops-db (CliWorld)
 * holding two observations of three files each, filed through `@ccat/client`, and what the
 * lifecycle would have recorded for the first one (through the same checked transitions the
 * workers use): one package written to Chile's buffer, one that failed, and a bundle sent once
 * and failed once.
 */
import { createClient } from "@ccat/client"
import { Repositories, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, expect } from "vitest"
import * as CliWorld from "./CliWorld.js"

/** The server, the observations and the lifecycle's recorded outcomes. */
export interface OperatorCliWorld extends CliWorld.CliWorld {
  /** The two observations, in order of start time. */
  readonly observations: ReadonlyArray<string>
  /** The files of both observations, three each, in filing order. */
  readonly files: ReadonlyArray<string>
  /** The first observation's package written to Chile's buffer (in_progress, in a bundle). */
  readonly written: string
  /** The first observation's package that failed before writing. */
  readonly failed: string
  /** The bundle holding `written`, and its one attempt, which failed. */
  readonly bundle: string
  readonly failedAttempt: string
}

/** Files two observations of three files each; returns their ids and their files' ids. */
const fileObservations = async (w: CliWorld.CliWorld) => {
  const instrument = await createClient({ baseUrl: w.url, token: w.tokens.instrument })
  const observations: Array<string> = []
  const files: Array<string> = []
  for (let i = 0; i < 2; i++) {
    const id = randomUUID()
    observations.push(id)
    const specs = [0, 1, 2].map((j) => ({
      id: randomUUID(),
      module: "280GHz",
      relativePath: `scan${i}/f${j}.fits`,
      sizeBytes: 1000 * (j + 1),
      checksum: Fixtures.checksum()
    }))
    files.push(...specs.map((f) => f.id))
    await instrument.fileObservation({
      id,
      obsUnitId: w.world.obsUnit.id,
      startAt: new Date(Date.UTC(2026, 4, 1, i)),
      endAt: new Date(Date.UTC(2026, 4, 1, i, 30)),
      sourceLocation: w.world.source.name,
      files: specs
    })
  }
  await instrument.close()
  return { observations, files }
}

/**
 * What the lifecycle would have recorded for `observation`: one package written to Chile's
 * buffer, one that claimed `claimedFile` and failed, a bundle sent once and failed once.
 */
const recordLifecycle = (w: CliWorld.CliWorld, observation: string, claimedFile: string) =>
  w.db(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const eou = (yield* Repositories.executedObsUnits.findById(observation as any)).pipe((
      o
    ) => (o._tag === "Some" ? o.value : undefined))!
    const ok = yield* Fixtures.rawDataPackage(w.world, eou)
    yield* Transitions.transition({ entity: "RawDataPackage", id: ok.id, from: "pending", to: "scheduled", actor: "planner:chile" })
    yield* Transitions.transition({ entity: "RawDataPackage", id: ok.id, from: "scheduled", to: "in_progress", actor: "worker:chile" })
    yield* sql`update raw_data_package set size_bytes = 4096, checksum = ${Fixtures.checksum()} where id = ${ok.id}`
    yield* Fixtures.physicalCopy(w.world.chileBuffer, ok)
    const bad = yield* Fixtures.rawDataPackage(w.world, eou)
    // It had claimed a file of the observation, as the packaging planner does, and failed before writing.
    yield* sql`update raw_data_file set raw_data_package_id = ${bad.id} where id = ${claimedFile}`
    yield* Transitions.transition({
      entity: "RawDataPackage",
      id: bad.id,
      from: "pending",
      to: "failed",
      actor: "worker:chile",
      set: { errorMessage: "no BUFFER with room at chile" }
    })
    const b = yield* Fixtures.dataTransferPackage([ok])
    const first = yield* Fixtures.dataTransfer(w.world, b)
    yield* sql`update data_transfer set status = 'failed', error_message = 'ssh: connection refused', finished_at = now(), started_at = now() where id = ${first.id}`
    return { written: ok.id, failed: bad.id, bundle: b.id, failedAttempt: first.id }
  }))

/** Starts the server, files the observations and records the lifecycle's outcomes; `close` stops it. */
export const start = async (): Promise<OperatorCliWorld> => {
  const w = await CliWorld.start()
  try {
    const { files, observations } = await fileObservations(w)
    const recorded = await recordLifecycle(w, observations[0]!, files[0]!)
    return { ...w, observations, files, ...recorded }
  } catch (e) {
    await w.close()
    throw e
  }
}

/**
 * The world of the calling test file: started before its first test (the object is filled in
 * then) and closed after its last, so each file's tests share one server and its data.
 */
export const forSuite = (): OperatorCliWorld => {
  const w = {} as { -readonly [K in keyof OperatorCliWorld]: OperatorCliWorld[K] }
  beforeAll(async () => {
    Object.assign(w, await start())
  })
  afterAll(async () => {
    await w.close?.()
  })
  return w
}

/** The JSON a run printed on stdout, after checking it succeeded (its stderr is the message if not). */
export const json = (r: CliWorld.Run) => {
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}
