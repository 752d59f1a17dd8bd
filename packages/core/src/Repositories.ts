/**
 * Insert and read every ops-db entity, typed and decoded. Rows of stateful entities are created
 * here in their machine's initial state, with a creation event in the event log, and only move on
 * through `Transitions.transition`; there is deliberately no generic update. All of them need a `SqlClient` and run inside the caller's
 * transaction when there is one.
 */
import * as Accounts from "./Accounts.js"
import * as EventLog from "./EventLog.js"
import { type CreationEvent, make, type Repository } from "./internal/repository.js"
import * as Observational from "./Observational.js"
import * as RawData from "./RawData.js"
import * as Staging from "./Staging.js"
import * as Storage from "./Storage.js"

/** The shape of every repository here, for code that takes one as a parameter. */
export type { CreationEvent, Repository }

/** Observatories. */
export const observatories = make(Observational.Observatory, "observatory")
/** Telescopes. */
export const telescopes = make(Observational.Telescope, "telescope")
/** Instruments. */
export const instruments = make(Observational.Instrument, "instrument")
/** Instrument modules. */
export const instrumentModules = make(Observational.InstrumentModule, "instrument_module")
/** Observing programs. */
export const observingPrograms = make(Observational.ObservingProgram, "observing_program")
/** Planned observations. */
export const obsUnits = make(Observational.ObsUnit, "obs_unit")
/** Parts of observing programs. */
export const subObservingPrograms = make(Observational.SubObservingProgram, "sub_observing_program")
/** Sources: what ObsUnits observe. */
export const sources = make(Observational.Source, "source")
/** Observing modes. */
export const observingModes = make(Observational.ObservingMode, "observing_mode")
/** Executed observations (filing inserts them with the instrument's id), with their filing event. */
export const executedObsUnits = make(Observational.ExecutedObsUnit, "executed_obs_unit", {
  orderBy: "startAt",
  events: { kind: "ExecutedObsUnit", column: "status" }
})

/** Filed raw data files. */
export const rawDataFiles = make(RawData.RawDataFile, "raw_data_file", {
  orderBy: "filedAt",
  events: { kind: "RawDataFile", column: "state" }
})
/** Raw data packages. */
export const rawDataPackages = make(RawData.RawDataPackage, "raw_data_package", {
  events: { kind: "RawDataPackage", column: "status" }
})
/** Data transfer packages (bundles). */
export const dataTransferPackages = make(RawData.DataTransferPackage, "data_transfer_package", {
  events: { kind: "DataTransferPackage", column: "status" }
})
/** Which raw data packages a bundle holds. */
export const dataTransferPackageMembers = make(RawData.DataTransferPackageMember, "data_transfer_package_member", {
  orderBy: "rawDataPackageId"
})
/** Transfer attempts. */
export const dataTransfers = make(RawData.DataTransfer, "data_transfer", {
  events: { kind: "DataTransfer", column: "status" }
})

/** Sites. */
export const sites = make(Storage.Site, "site")
/** Data locations. */
export const dataLocations = make(Storage.DataLocation, "data_location")
/** Physical copies. */
export const physicalCopies = make(Storage.PhysicalCopy, "physical_copy", {
  events: { kind: "PhysicalCopy", column: "status" }
})
/** Routes between sites. */
export const routes = make(Storage.Route, "route")
/** Retention policies, one per location at most. */
export const retentionPolicies = make(Storage.RetentionPolicy, "retention_policy")

/** Staging requests. */
export const stagingRequests = make(Staging.StagingRequest, "staging_request", {
  events: { kind: "StagingRequest", column: "status" }
})
/** What staging requests ask for. */
export const stagingRequestItems = make(Staging.StagingRequestItem, "staging_request_item", { orderBy: "id" })

/** Accounts (their creation event is `AccessEvents`', with the account's name and role). */
export const accounts = make(Accounts.Account, "account")
/** API tokens (hashed). */
export const apiTokens = make(Accounts.ApiToken, "api_token")
/** Program access grants. */
export const programAccess = make(Accounts.ProgramAccess, "program_access", { orderBy: "grantedAt" })
/** Instrument access grants. */
export const instrumentAccess = make(Accounts.InstrumentAccess, "instrument_access", { orderBy: "grantedAt" })

/** The event log, oldest first. Append through `EventLog.append` or `Transitions`; the database refuses changes. */
export const eventLog = make(EventLog.EventLogEntry, "event_log", { orderBy: "id" })
