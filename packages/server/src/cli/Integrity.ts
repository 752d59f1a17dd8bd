/**
 * `ccat integrity`: a running server's `GET /integrity` for people: per location the copies
 * audited within the cycle, the last audit and the audit lag, corrupt, missing and dark objects,
 * repairs and the last inventory pass; then the archived packages below their copy target with
 * their bad copies. `--json` prints the API's answer as it is. docs/integrity.md says what each
 * figure means and what to do about it.
 */
import { IntegrityApi } from "@ccat/core"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

/** The audit lag as people read it: "never" while some live copy was never verified. */
const lag = (l: IntegrityApi.LocationIntegrity): string => {
  const seen = l.auditLagSeconds === null ? "-" : Output.duration(l.auditLagSeconds * 1000)
  return l.unverifiedCopies > 0 ? `never (${l.unverifiedCopies} unverified)${l.auditLagSeconds === null ? "" : `, else ${seen}`}` : seen
}

/** The report as people read it. */
export const render = (r: IntegrityApi.IntegrityReport): string => {
  const t = r.totals
  const out: Array<string> = [
    `CCAT Data Center integrity at ${Output.instant(r.at)} (audit cycle ${r.auditCycleDays} days, ${r.copyTarget} good archive ${
      r.copyTarget === 1 ? "copy" : "copies"
    } per package)`,
    "",
    `Totals: ${t.copies} copies, ${t.audited} audited within the cycle, ${t.unverifiedCopies} never verified, ` +
    `${t.corrupt} corrupt, ${t.missing} missing, ${t.dark} dark, ${t.repaired} repaired; ${t.packagesBelowTarget} packages below target`
  ]
  if (r.scope === "totals") {
    out.push("", "(this account sees totals only: locations and packages are shown to operators and admins)")
    return out.join("\n")
  }
  out.push("", "Locations")
  out.push(
    r.locations.length === 0 ? "  none" : Output.table(
      [
        "SITE",
        "LOCATION",
        "TYPE",
        "TECH",
        "COPIES",
        "AUDITED",
        "LAST AUDIT",
        "AUDIT LAG",
        "CORRUPT",
        "MISSING",
        "DARK",
        "REPAIRED",
        "LAST INVENTORY"
      ],
      r.locations.map((l) => [
        l.siteShortName,
        l.name,
        l.type,
        l.technology,
        String(l.copies),
        String(l.audited),
        Output.instant(l.lastAuditAt),
        lag(l),
        String(l.corrupt),
        String(l.missing),
        String(l.dark),
        String(l.repaired),
        Output.instant(l.lastInventoryAt)
      ])
    )
  )
  const below = r.packagesBelowTarget
  out.push(
    "",
    below.total === 0
      ? "Packages below target: none"
      : `Packages below target (${below.items.length} of ${below.total}, by id)`
  )
  if (below.items.length > 0) {
    out.push(Output.table(
      ["PACKAGE", "GOOD", "TARGET", "BAD COPIES"],
      below.items.map((p) => [
        p.id,
        String(p.goodCopies),
        String(p.target),
        p.badCopies.length === 0
          ? "(none: copies are missing altogether)"
          : p.badCopies.map((c) =>
            `${c.location} ${c.status}${c.status === "PRESENT" ? (c.verified ? " (other bytes)" : " (never verified)") : ""}`
          ).join(", ")
      ])
    ))
    out.push("  history with: ccat packages show ID; what to do: docs/integrity.md")
  }
  return out.join("\n")
}

/** `ccat integrity`. */
export const command = Command.make(
  "integrity",
  {
    ...Remote.options,
    packages: Options.integer("packages").pipe(
      Options.withDefault(20),
      Options.withDescription("how many packages below their copy target to list, 0 to 1000 (default 20); the total counts them all")
    )
  },
  (o) =>
    Effect.gen(function* () {
      if (o.packages < 0 || o.packages > 1000) return yield* Remote.usage(o.json, `--packages must be from 0 to 1000, not ${o.packages}`)
      const report = yield* Remote.withClient(o, (c) => c.integrity.get({ urlParams: { belowTargetLimit: o.packages } }))
      if (o.json) return yield* Remote.printJson(IntegrityApi.IntegrityReport, report)
      yield* Console.log(render(report))
    })
).pipe(
  Command.withDescription(
    "integrity at rest of a running server: audits, corrupt, missing and dark objects, repairs per location; packages below their copy target"
  )
)
