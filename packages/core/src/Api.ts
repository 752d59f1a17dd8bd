/**
 * The one HTTP API contract of the platform, versioned under `/api/v1`. The server implements
 * it, `@ccat/client` is derived from it, and the OpenAPI document is generated from it. Every
 * group but `system` sits behind bearer-token authentication, and every endpoint declares the
 * roles it accepts (`ApiSecurity.allow`).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { AdminApi } from "./AdminApi.js"
import { BadRequest, PayloadTooLarge } from "./ApiErrors.js"
import { CatalogApi } from "./CatalogApi.js"
import { DataProductsApi } from "./DataProductsApi.js"
import { FilesApi } from "./FilesApi.js"
import { IntegrityApi } from "./IntegrityApi.js"
import { LocationsApi } from "./LocationsApi.js"
import { ObservationsApi } from "./ObservationsApi.js"
import { OperationsApi } from "./OperationsApi.js"
import { PackagesApi } from "./PackagesApi.js"
import { StagingApi } from "./StagingApi.js"
import { StatusApi } from "./StatusApi.js"
import { SystemApi } from "./SystemApi.js"
import { TokensApi } from "./TokensApi.js"
import { TransfersApi } from "./TransfersApi.js"

/** The whole API. */
export class Api extends HttpApi.make("ccat")
  .add(SystemApi)
  .add(ObservationsApi)
  .add(FilesApi)
  .add(PackagesApi)
  .add(TransfersApi)
  .add(LocationsApi)
  .add(StagingApi)
  .add(OperationsApi)
  .add(StatusApi)
  .add(IntegrityApi)
  .add(TokensApi)
  .add(AdminApi)
  .add(CatalogApi)
  .add(DataProductsApi)
  // Any request may be refused before it reaches an endpoint: a body that is not JSON or too big.
  .addError(BadRequest)
  .addError(PayloadTooLarge)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "CCAT Data Center API")
  .annotate(OpenApi.Description, "File observations, follow their data from the telescope to the archive, and stage it for processing.")
{}
