/**
 * Processed results back into the archive (the seed's stage 5): a pipeline files a DataProduct
 * it wrote at a PROCESSING location, with its provenance (the observations, packages or other
 * products it was made from), the pipeline and its version. The product's files are packaged,
 * archived and verified like an instrument's, follow the same retention and integrity rules,
 * and the product appears in ObsCore at its calib_level once it is ARCHIVED. The product's id
 * and its files' ids are the pipeline's own UUIDs, so filing is idempotent: the same request
 * again answers with what is stored; other values under a stored id or name are a 409.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Conflict, Forbidden, NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { strict } from "./ApiPayload.js"
import { allow, Authentication } from "./ApiSecurity.js"
import { DisplayName, JsonObject } from "./Fields.js"
import * as Ids from "./Ids.js"
import { ChecksumInput, LocationName, maxFilesPerRequest, PathInput, SizeInput } from "./ObservationsApi.js"
import { PackageJourney, Status } from "./Status.js"

/** The most inputs one product may name. */
export const maxInputs = 10_000

/** ObsCore's calibration levels of processed data: 2 calibrated, 3 enhanced (combined) products. */
export const CalibLevel = Schema.Literal(2, 3).annotations({
  identifier: "CalibLevel",
  description: "2: calibrated, science-ready data; 3: enhanced products (maps, cubes or catalogues combined from several inputs)"
})

/** ObsCore's data product types. */
export const DataproductType = Schema.Literal("image", "cube", "spectrum", "sed", "timeseries", "visibility", "event", "measurements")
  .annotations({
    identifier: "DataproductType"
  })

/** A pipeline's version as it names it (`2.4.1`, a commit hash): 1 to 100 characters, not starting with a space. */
export const PipelineVersion = Schema.String.pipe(
  Schema.pattern(/^\S.{0,99}$/s, { message: () => "a pipeline version is 1 to 100 characters and does not start with white space" })
).annotations({ identifier: "PipelineVersion" })

/** One input of a product: an observation (all its raw data), one RawDataPackage, or another product. */
export const ProductInput = Schema.Union(
  Schema.Struct({ observationId: Schema.UUID }).annotations(strict),
  Schema.Struct({ packageId: Schema.UUID }).annotations(strict),
  Schema.Struct({ productId: Schema.UUID }).annotations(strict)
).annotations({ identifier: "ProductInput", description: "{ observationId }, { packageId } or { productId }" })
/** One input of a product. */
export type ProductInput = typeof ProductInput.Type

/** One file of a product: the pipeline's id for it, its path at the PROCESSING location, size and checksum. */
export const ProductFileSpec = Schema.Struct({
  id: Schema.UUID,
  relativePath: PathInput,
  sizeBytes: SizeInput,
  checksum: ChecksumInput
}).annotations({ ...strict, identifier: "ProductFileSpec" })
/** One file of a product. */
export type ProductFileSpec = typeof ProductFileSpec.Type

/** A product to file, whole: its files and its provenance. */
export const FileDataProduct = Schema.Struct({
  /** The pipeline's UUID for this product; filing it again with the same values is a no-op. */
  id: Schema.UUID,
  /** A name people find it by, unique in the archive (case-insensitive). */
  name: DisplayName,
  /** The pipeline that made it. */
  pipeline: DisplayName,
  pipelineVersion: PipelineVersion,
  /** The pipeline's parameters for this run, as it wants them recorded. */
  parameters: Schema.optional(JsonObject),
  calibLevel: CalibLevel,
  dataproductType: DataproductType,
  /** The short name of the PROCESSING location the files are at. */
  location: LocationName,
  /** What it was made from, in the pipeline's order; every input must be visible to the caller and of one observing program. */
  inputs: Schema.Array(ProductInput).pipe(Schema.minItems(1), Schema.maxItems(maxInputs)),
  files: Schema.Array(ProductFileSpec).pipe(Schema.minItems(1), Schema.maxItems(maxFilesPerRequest))
}).annotations({ ...strict, identifier: "FileDataProduct" })
/** A product to file. */
export type FileDataProduct = typeof FileDataProduct.Type

/** A product's file as stored. */
export const ProductFile = Schema.Struct({
  id: Ids.RawDataFileId,
  relativePath: Schema.String,
  sizeBytes: Schema.Number,
  checksum: Schema.String,
  /** filed (waiting to be packaged), packaged, or corrupt/missing when packaging found it so. */
  state: Schema.String,
  packageId: Schema.NullOr(Ids.RawDataPackageId)
}).annotations({ identifier: "ProductFile" })

/** A product's package and where it is on its way to the archive. */
export const ProductPackage = Schema.Struct({
  id: Ids.RawDataPackageId,
  status: Status,
  journey: PackageJourney
}).annotations({ identifier: "ProductPackage" })

/** A product as a list shows it: what it is, whose, and its journey; its files and provenance are in the product itself. */
export const DataProductSummary = Schema.Struct({
  id: Schema.UUID,
  name: Schema.String,
  pipeline: Schema.String,
  pipelineVersion: Schema.String,
  calibLevel: CalibLevel,
  dataproductType: DataproductType,
  /** The observing program whose access rules the product follows (its inputs'). */
  programId: Ids.ObservingProgramId,
  location: Schema.String,
  /** The account that filed it. */
  filedBy: Schema.String,
  createdAt: Schema.DateTimeUtc,
  /** ARCHIVED once every file is packaged and every package ARCHIVED; FAILED when a package failed or a file was found bad. */
  journey: PackageJourney,
  /** Its `obs_publisher_did` in ObsCore (a DataLink ID), listed there once ARCHIVED. */
  publisherDid: Schema.String
}).annotations({ identifier: "DataProductSummary" })
/** A product as a list shows it. */
export type DataProductSummary = typeof DataProductSummary.Type

/** A product as stored: its summary with its parameters, provenance, files and packages. */
export const DataProduct = Schema.Struct({
  ...DataProductSummary.fields,
  parameters: JsonObject,
  inputs: Schema.Array(ProductInput),
  /** Every observation it derives from, directly or through its input products. */
  observationIds: Schema.Array(Ids.ExecutedObsUnitId),
  files: Schema.Array(ProductFile),
  packages: Schema.Array(ProductPackage)
}).annotations({ identifier: "DataProduct" })
/** A product as stored. */
export type DataProduct = typeof DataProduct.Type

/** Filters of the product list; each narrows it, and they combine. */
export const DataProductFilter = Schema.Struct({
  programId: Schema.optional(Ids.ObservingProgramId),
  /** The pipeline's name, exactly as filed. */
  pipeline: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))),
  calibLevel: Schema.optional(Schema.compose(Schema.NumberFromString, CalibLevel)),
  /** Products derived from this observation, directly or through their input products. */
  observationId: Schema.optional(Ids.ExecutedObsUnitId),
  journey: Schema.optional(PackageJourney),
  /** `true`: only ARCHIVED products; `false`: only those not ARCHIVED yet (waiting, on their way, or failed). */
  archived: Schema.optional(Schema.Literal("true", "false")),
  ...PageParams
})

/** Filing and reading processed data products. */
export class DataProductsApi extends HttpApiGroup.make("dataProducts")
  .add(
    HttpApiEndpoint.post("file", "/data-products")
      .setPayload(FileDataProduct)
      .addSuccess(DataProduct)
      .addError(Conflict)
      .addError(Unprocessable)
      .addError(Forbidden)
      .pipe(
        allow(
          ["scientist", "admin"],
          "File a processed DataProduct written at a PROCESSING location, with its files and provenance, all or nothing; it is then packaged and archived like raw data. Idempotent: the same id and values answer with the stored product; other values under a stored id or name are a 409 naming the fields."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/data-products")
      .setUrlParams(DataProductFilter)
      .addSuccess(Page(DataProductSummary))
      .addError(Unprocessable)
      .pipe(
        allow(
          ["scientist", "operator", "admin"],
          "DataProducts in filing order, filtered by program, pipeline, calib_level, the observation they derive from, journey or archived; scientists see their programs' products."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/data-products/:id")
      .setPath(Schema.Struct({ id: Schema.UUID }))
      .addSuccess(DataProduct)
      .addError(NotFound)
      .pipe(
        allow(
          ["scientist", "operator", "admin"],
          "One product with its provenance, files, packages and journey; scientists see their programs' products."
        )
      )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Processed results back into the archive: data products with their provenance.")
{}
