/**
 * @ccat/core: the domain, the ops-db, the ports and the API contract of the CCAT Data Center.
 * A barrel of namespaces, one per module (STYLE §1).
 */

// --- shared vocabulary ---
export * as Checksum from "./Checksum.js"
export * as RelativePath from "./RelativePath.js"

// --- domain and ops-db ---
export * as Topology from "./Topology.js"
export * as Migrations from "./Migrations.js"
export * as Ids from "./Ids.js"
export * as Fields from "./Fields.js"
export * as Status from "./Status.js"
export * as Observational from "./Observational.js"
export * as RawData from "./RawData.js"
export * as Storage from "./Storage.js"
export * as Staging from "./Staging.js"
export * as Accounts from "./Accounts.js"
export * as EventLog from "./EventLog.js"
export * as StateMachine from "./StateMachine.js"
export * as ConstraintError from "./ConstraintError.js"
export * as Repositories from "./Repositories.js"
export * as Transitions from "./Transitions.js"
export * as ObsCore from "./ObsCore.js"

// --- retries and breakers ---
export * as Backoff from "./Backoff.js"
export * as TransferPolicy from "./TransferPolicy.js"

// --- storage ports ---
export * as StorageDriver from "./StorageDriver.js"
export * as StorageDriverRegistry from "./StorageDriverRegistry.js"
export * as StorageError from "./StorageError.js"
export * as StorageHasher from "./StorageHasher.js"
export * as TemporaryNames from "./TemporaryNames.js"
export * as LentBytes from "./LentBytes.js"

// --- packages: manifest, tar, reading and verifying ---
export * as PackageManifest from "./PackageManifest.js"
export * as PackageLayout from "./PackageLayout.js"
export * as PackageReader from "./PackageReader.js"
export * as TarFormat from "./TarFormat.js"
export * as ArchiveReader from "./ArchiveReader.js"

// --- lifecycle policies ---
export * as Retention from "./Retention.js"
export * as BundlePlan from "./BundlePlan.js"

// --- transfer ports ---
export * as TransferAdapter from "./TransferAdapter.js"
export * as TransferAdapterRegistry from "./TransferAdapterRegistry.js"
export * as TransferEndpoint from "./TransferEndpoint.js"
export * as TransferError from "./TransferError.js"

// --- API contract ---
export * as Api from "./Api.js"
export * as ApiErrors from "./ApiErrors.js"
export * as ApiPage from "./ApiPage.js"
export * as ApiPayload from "./ApiPayload.js"
export * as ApiSecurity from "./ApiSecurity.js"
export * as SystemApi from "./SystemApi.js"
export * as ObservationsApi from "./ObservationsApi.js"
export * as FilesApi from "./FilesApi.js"
export * as PackagesApi from "./PackagesApi.js"
export * as TransfersApi from "./TransfersApi.js"
export * as LocationsApi from "./LocationsApi.js"
export * as StagingApi from "./StagingApi.js"
export * as OperationsApi from "./OperationsApi.js"
export * as StatusApi from "./StatusApi.js"
export * as IntegrityApi from "./IntegrityApi.js"
export * as TokensApi from "./TokensApi.js"
export * as AdminApi from "./AdminApi.js"
export * as CatalogApi from "./CatalogApi.js"
export * as DataProductsApi from "./DataProductsApi.js"
