/**
 * The one HTTP API contract of the platform, versioned under `/api/v1`. The server implements
 * it, `@ccat/client` is derived from it, and the OpenAPI document is generated from it.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { SystemApi } from "./SystemApi.js"

/** The whole API. */
export class Api extends HttpApi.make("ccat")
  .add(SystemApi)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "CCAT Data Center API")
  .annotate(OpenApi.Description, "File observations, follow their data from the telescope to the archive, and stage it for processing.")
{}
