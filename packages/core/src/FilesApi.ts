/**
 * Reading filed RawDataFiles: which files an observation has, where they were filed, whether
 * they are packaged yet. Filing itself is in `ObservationsApi`, next to the observation.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { RawDataFile, RawDataFileState } from "./RawData.js"

/** Filters of the file list. */
export const FileFilter = Schema.Struct({
  observationId: Schema.optional(Ids.ExecutedObsUnitId),
  moduleId: Schema.optional(Ids.InstrumentModuleId),
  packageId: Schema.optional(Ids.RawDataPackageId),
  state: Schema.optional(RawDataFileState),
  /** `raw`: files instruments filed; `product`: files of processed DataProducts; absent: both. */
  kind: Schema.optional(Schema.Literal("raw", "product")),
  ...PageParams
})

/** Reading RawDataFiles. */
export class FilesApi extends HttpApiGroup.make("files")
  .add(
    HttpApiEndpoint.get("list", "/files")
      .setUrlParams(FileFilter)
      .addSuccess(Page(RawDataFile.json))
      .addError(Unprocessable)
      .pipe(
        allow(
          ["instrument", "scientist", "operator", "admin"],
          "RawDataFiles in filing order, filtered by observation, module, package, state or kind (raw: filed by instruments; product: files of processed DataProducts)."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/files/:id")
      .setPath(Schema.Struct({ id: Ids.RawDataFileId }))
      .addSuccess(RawDataFile.json)
      .addError(NotFound)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "One RawDataFile."))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Filed RawDataFiles.")
{}
