/**
 * The checks an attempt must pass under its route's lock, once in SQL (so the statement that
 * checks can also create the attempt) and once in TypeScript (so a refusal says why): the source
 * copy still PRESENT, neither circuit open, the route below its limit, no other attempt open.
 */
import { type Ids, TransferPolicy } from "@ccat/core"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Routes from "../Routes.js"

/** What the checks under the route's lock found. */
export interface Checks {
  readonly copy: string | null
  readonly routeLast: TransferPolicy.CircuitFacts["last"]
  readonly routeProbing: number
  readonly toLast: TransferPolicy.CircuitFacts["last"]
  readonly toProbing: number
  readonly running: number
  readonly open: number
}

/**
 * The checks made under the route's lock, as CTEs ending in `checks` (one row): the copy (locked
 * for share), both circuits' facts, the route's running transfers and the bundle's open attempts
 * other than `retryId`.
 */
export const checksSql = (
  sql: SqlClient.SqlClient,
  bundleId: string,
  routeId: string,
  sourceId: string,
  toId: string,
  retryId: string | undefined,
  policy: TransferPolicy.TransferPolicyConfig
) => sql`
  copy as (select status::text as status from physical_copy where id = ${sourceId} for share),
  route_circuit as (select ${Routes.circuitFactsSql(sql, "route_id", sql`${routeId}::uuid`, policy)}),
  to_circuit as (select ${Routes.circuitFactsSql(sql, "to_location_id", sql`${toId}::uuid`, policy)}),
  checks as (
    select (select status from copy) as copy,
      rc.last as route_last, rc.probing as route_probing, tc.last as to_last, tc.probing as to_probing,
      ${Routes.runningSql(sql, routeId)} as running,
      (select count(*)::int from data_transfer
       where data_transfer_package_id = ${bundleId}::uuid and status in ('pending', 'scheduled', 'in_progress')
         and id <> ${retryId ?? "00000000-0000-0000-0000-000000000000"}::uuid) as open
    from route_circuit rc, to_circuit tc)`

/**
 * Whether a circuit with facts `last` (json, newest first) and `probing` lets an attempt through,
 * in SQL: TransferPolicy.circuitOf's rule (closed, or half-open with no probe running), so the
 * statement that checks can also create the attempt. `decided` below holds the two to agreeing.
 */
export const circuitLetsThroughSql = (
  sql: SqlClient.SqlClient,
  last: string,
  probing: string,
  policy: TransferPolicy.TransferPolicyConfig
) => sql`(
  json_array_length(${sql.literal(last)}) < ${policy.breakerThreshold}::int
  or exists (select 1 from json_array_elements(${sql.literal(last)}) e where e->>'status' <> 'failed')
  or (${policy.breakerCoolDownMs}::float8 - (${sql.literal(last)}->0->>'sinceMs')::float8 <= 0 and ${sql.literal(probing)} = 0))`

/** What `startAttempt` did: an attempt started, a wait and why, or why the bundle cannot be sent from this copy. */
export type Started =
  | { readonly attempt: { readonly id: Ids.DataTransferId; readonly attempt: number } }
  | { readonly attempt?: undefined; readonly wait: number; readonly why: string; readonly waitsFor?: string }
  | { readonly gone: string }

/**
 * How long a bundle waits for a place on a full route at most. The attempt that frees a place
 * wakes the waiters at once, and a bundle that has just begun to wait looks once more itself
 * (`TransferAttempts.wakeForRoute`), so this bounds only the wait after a worker that died before
 * it could wake anyone, or a place freed by closing a dead worker's attempt. A short fixed wait
 * made every idle transfer slot of every process re-check every queued bundle in turn, a busy
 * loop on the workers and the ops-db.
 */
export const capacityWaitMs = 30_000

/** What the checks allow: an attempt (`go`), a wait and why, or that the copy cannot be sent from. */
export const decided = (
  site: string,
  route: Routes.Route,
  checks: Checks,
  policy: TransferPolicy.TransferPolicyConfig
): Exclude<Started, { readonly attempt: object }> | { readonly go: true } => {
  if (checks.copy !== "PRESENT") return { gone: `its copy at ${site} is ${checks.copy ?? "gone"}` } as const
  for (const facts of [{ last: checks.routeLast, probing: checks.routeProbing }, { last: checks.toLast, probing: checks.toProbing }]) {
    const c = TransferPolicy.circuitOf(facts, policy)
    if (c.state === "open") return { wait: c.retryInMs, why: c.reason } as const
  }
  if (checks.running >= route.maxConcurrentTransfers) {
    return { wait: capacityWaitMs, why: `route at its limit of ${route.maxConcurrentTransfers} transfers`, waitsFor: route.id } as const
  }
  if (checks.open > 0) return { wait: 5_000, why: "another worker is moving it" } as const
  return { go: true } as const
}
