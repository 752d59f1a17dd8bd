/**
 * The integrity group: per location the audits, findings, dark objects and repairs, and the
 * archived packages below their copy target (IntegrityFigures), in one read-only
 * repeatable-read transaction so every figure is of the same instant. Callers who see no
 * infrastructure (scientists, instrument accounts) get the totals only, as for the status.
 */
import { Api, ApiSecurity, IntegrityApi } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as IntegrityFigures from "../lifecycle/IntegrityFigures.js"
import * as Access from "./Access.js"

const sum = (
  rows: ReadonlyArray<IntegrityApi.LocationIntegrity>,
  key: "copies" | "audited" | "unverifiedCopies" | "corrupt" | "missing" | "dark" | "repaired"
) => rows.reduce((n, r) => n + r[key], 0)

const report = (p: ApiSecurity.Principal, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        // Must be the transaction's first statement; read only, so it can never change anything.
        yield* sql`set transaction isolation level repeatable read, read only`
        const [{ now }] = yield* sql<{ now: Date }>`select now() as now`
        const policy = yield* IntegrityFigures.policy
        const target = IntegrityFigures.copyTarget(policy)
        const locations = yield* IntegrityFigures.locations(now, policy)
        const full = Access.seesEverything(p)
        const below = yield* IntegrityFigures.belowTarget(target, full ? limit : 0)
        return {
          at: DateTime.unsafeMake(now),
          scope: full ? ("full" as const) : ("totals" as const),
          auditCycleDays: IntegrityFigures.auditCycleDays(policy),
          copyTarget: target,
          totals: {
            copies: sum(locations, "copies"),
            audited: sum(locations, "audited"),
            unverifiedCopies: sum(locations, "unverifiedCopies"),
            corrupt: sum(locations, "corrupt"),
            missing: sum(locations, "missing"),
            dark: sum(locations, "dark"),
            repaired: sum(locations, "repaired"),
            packagesBelowTarget: below.total
          },
          locations: full ? locations : [],
          packagesBelowTarget: below
        } satisfies IntegrityApi.IntegrityReport
      })
    ))

/** The integrity group's handlers. */
export const IntegrityHttpLive = HttpApiBuilder.group(
  Api.Api,
  "integrity",
  (handlers) =>
    handlers.handle(
      "get",
      ({ urlParams: q }) =>
        Effect.flatMap(ApiSecurity.CurrentAccount, (p) => report(p, q.belowTargetLimit ?? IntegrityApi.defaultBelowTargetLimit)).pipe(
          Effect.orDie,
          Effect.withSpan("IntegrityHttp.report")
        )
    )
)
