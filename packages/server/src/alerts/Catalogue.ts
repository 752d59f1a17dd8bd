/**
 * The persistent conditions that need a person, by the names the shipped Prometheus rules use
 * (`docs/alerts/ccat-rules.yml`): a site with Prometheus and one with only the built-in notifier
 * page people about the same things under the same names, and a test holds the two lists equal.
 */

/** How urgent an incident is; Alertmanager routes on it as the `severity` label. */
export type Severity = "critical" | "warning" | "info"

/** One condition: its alert name, how urgent, what it means in one line, and who evaluates it. */
export interface Condition {
  readonly name: AlertName
  readonly severity: Severity
  readonly summary: string
  /**
   * `notifier` when the built-in notifier evaluates it from the ops-db; `prometheus` when the
   * state it needs lives outside the ops-db (a relay's own store) and only the rule covers it.
   */
  readonly evaluatedBy: "notifier" | "prometheus"
}

/** Every alert name, the contract with the Prometheus rules. */
export const names = [
  "CcatPackageFailed",
  "CcatBundleFailed",
  "CcatStagingRequestFailed",
  "CcatCircuitOpen",
  "CcatLocationFull",
  "CcatStageBacklogOld",
  "CcatAuditFindings",
  "CcatRelayBacklogOld"
] as const

/** An alert name of the catalogue. */
export type AlertName = (typeof names)[number]

/** The catalogue. */
export const conditions: ReadonlyArray<Condition> = [
  {
    name: "CcatPackageFailed",
    severity: "critical",
    summary: "A RawDataPackage ended FAILED and needs an operator (see its error, then `ccat retry`).",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatBundleFailed",
    severity: "critical",
    summary: "A DataTransferPackage (bundle) ended FAILED and needs an operator.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatStagingRequestFailed",
    severity: "warning",
    summary: "A staging request ended FAILED; its scientist is waiting.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatCircuitOpen",
    severity: "warning",
    summary: "A route's circuit breaker has been open longer than allowed: nothing moves along it.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatLocationFull",
    severity: "critical",
    summary: "A data location is filled above its alert threshold.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatStageBacklogOld",
    severity: "warning",
    summary: "Work has waited at a lifecycle stage longer than its policy allows.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatAuditFindings",
    severity: "critical",
    summary: "Copies found CORRUPT or MISSING stay unrepaired, or unaccounted (dark) objects stay unresolved.",
    evaluatedBy: "notifier"
  },
  {
    name: "CcatRelayBacklogOld",
    severity: "warning",
    summary: "A telescope relay holds filings the main has not taken for too long (the link is down).",
    evaluatedBy: "prometheus"
  }
]

/** The catalogue entry of a name. */
export const byName = (name: AlertName): Condition => conditions.find((c) => c.name === name)!

/** An incident's severity: its condition's, but dark objects and a lagging audit are warnings (as in the rules). */
export const severityOf = (name: AlertName, labels: Readonly<Record<string, string>>): Severity =>
  name === "CcatAuditFindings" && (labels.finding === "dark" || labels.finding === "audit_lag") ? "warning" : byName(name).severity
