/**
 * What `bench/scale.ts` times on each catalog, beyond its own `/api/v1/status`, `/metrics` and
 * Influx push. Add a probe here (a planner tick, the first and a deep page of a list endpoint, a
 * filing of 10,000 files): it runs on the loaded catalog, against the running server, several
 * times, and the bench prints its median beside the others and its growth from the smallest
 * catalog to the largest. A probe must leave the catalog as it found it, or run last.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Effect from "effect/Effect"
import type * as Catalog from "../packages/server/test/scale/Catalog.js"
import { listProbes, plannerProbes, releaseRuntimes } from "./scaleLists.js"

/** What a probe may use. */
export interface ProbeContext {
  /** The server's base URL, e.g. `http://127.0.0.1:41234`. */
  readonly baseUrl: string
  /** A bearer token of an operator account. */
  readonly token: string
  /** The loaded catalog (its plan and the topology ids); undefined for a kept one (`SCALE_KEPT`). */
  readonly catalog: Catalog.Loaded | undefined
}

/** One timed operation. */
export interface Probe {
  /** Shown in the table, e.g. `planner tick: package`. */
  readonly name: string
  /** Target in milliseconds at 10^7 files, when the issue sets one. */
  readonly targetMs?: number
  /** Brings the catalog to the state the probe times, once, untimed, before its warm-up run. */
  readonly prepare?: (context: ProbeContext) => Effect.Effect<unknown, unknown, SqlClient.SqlClient>
  readonly run: (context: ProbeContext) => Effect.Effect<unknown, unknown, SqlClient.SqlClient>
}

/** The probes other parts of the platform contribute (planners, list endpoints, filing). */
export const probes: ReadonlyArray<Probe> = [...listProbes, ...plannerProbes]

/** Releases what the probes built for a catalog (the planners' job engines); run before its pool closes. */
export const releaseProbes: Effect.Effect<void> = releaseRuntimes
