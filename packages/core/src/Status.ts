/**
 * The CCAT shared operation Status, and the journey of a package as people see it. Packaging,
 * bundles, transfer attempts and staging requests all move through the same five states, so an
 * operator reads one vocabulary everywhere (DESIGN §3).
 */
import * as Schema from "effect/Schema"

/** The state of an operation: pending, scheduled, in_progress, completed or failed. */
export const Status = Schema.Literal("pending", "scheduled", "in_progress", "completed", "failed")
/** The state of an operation. */
export type Status = typeof Status.Type

/** Every Status, in lifecycle order. */
export const statuses: ReadonlyArray<Status> = Status.literals

/** A package's journey as the UI and API show it. */
export const PackageJourney = Schema.Literal("WAITING", "TRANSFERRING", "ARCHIVED", "FAILED")
/** A package's journey as the UI and API show it. */
export type PackageJourney = typeof PackageJourney.Type

/**
 * The journey of a RawDataPackage, derived from its Status rather than stored: a second column
 * would be a second source of truth that a missed update could make disagree with the first.
 */
export const journey = (status: Status): PackageJourney => {
  switch (status) {
    case "pending":
    case "scheduled":
      return "WAITING"
    case "in_progress":
      return "TRANSFERRING"
    case "completed":
      return "ARCHIVED"
    case "failed":
      return "FAILED"
  }
}
