/**
 * The IVOA ObsCore 1.1 table of the archive, `ivoa.obscore`, described column by column: name,
 * SQL type, VOTable datatype, unit, UCD, utype and meaning. The view itself is migration
 * 0020's (0024 adds the product rows); this description is what a TAP service publishes in `/tables` and `TAP_SCHEMA`, and a
 * test holds the two together. Columns marked `hidden` are not ObsCore: a TAP service uses them
 * for its access rules (which program a row belongs to, when it becomes public) and must not
 * publish them.
 *
 * A raw row is one observation (ExecutedObsUnit) and one instrument module whose raw data is
 * archived: the observation completed, every package of the module ARCHIVED, no file left
 * unpackaged. A product row (migration 0024) is one DataProduct a pipeline filed, at its
 * calib_level (2 or 3), once every package of it is ARCHIVED; its `obs_publisher_did` is
 * `<authority>?product/<product id>`. `access_url` is a DataLink links URL
 * (`/api/v1/datalink?ID=<obs_publisher_did>`) under the publisher's base URL, which the server
 * sets from its `publicUrl`.
 */
import * as Schema from "effect/Schema"

/** The schema the table lives in, as TAP names it. */
export const schemaName = "ivoa"

/** The table's qualified name, as ADQL queries name it. */
export const tableName = "ivoa.obscore"

/** The ObsCore data model this table implements (TAP `dataModel` in capabilities). */
export const dataModel = "ivo://ivoa.net/std/ObsCore#core-1.1"

/** The utype TAP_SCHEMA gives the table. */
export const tableUtype = "ivo://ivoa.net/std/ObsCore#table-1.1"

/** The table's description, as published. */
export const tableDescription =
  "CCAT data in the archive (IVOA ObsCore 1.1): one row per observation and instrument module whose raw packages are all ARCHIVED, and one per processed data product whose packages are all ARCHIVED."

/** How a column is stored in the view. */
export type SqlType = "text" | "smallint" | "bigint" | "double precision" | "uuid" | "timestamptz"

/** A column's VOTable datatype (what TAP_SCHEMA.columns.datatype holds). */
export type VotableDatatype = "char" | "short" | "int" | "long" | "double"

/** One column of the table. */
export interface Column {
  readonly name: string
  readonly sqlType: SqlType
  readonly datatype: VotableDatatype
  /** `*` for variable-length strings. */
  readonly arraysize?: "*"
  /** A DALI/ADQL extended type (`adql:REGION`, `timestamp`). */
  readonly xtype?: string
  readonly unit?: string
  readonly ucd?: string
  readonly utype?: string
  readonly description: string
  /** ObsCore's mandatory set (TAP_SCHEMA `std` = 1). */
  readonly std: boolean
  /** Shown by default in clients (TAP_SCHEMA `principal`). */
  readonly principal: boolean
  /** Whether a query constrained by this column uses an index of the ops-db. */
  readonly indexed: boolean
  /** Not ObsCore and not published: for the TAP service's access rules and links only. */
  readonly hidden: boolean
}

type Spec = Omit<Column, "std" | "principal" | "indexed" | "hidden"> & Partial<Pick<Column, "principal" | "indexed">>

const text = { sqlType: "text", datatype: "char", arraysize: "*" } as const
const double = { sqlType: "double precision", datatype: "double" } as const
const long = { sqlType: "bigint", datatype: "long" } as const

const std = (spec: Spec): Column => ({ principal: false, indexed: false, ...spec, std: true, hidden: false })
const hidden = (spec: Spec): Column => ({ principal: false, indexed: false, ...spec, std: false, hidden: true })

/** Every column of `ivoa.obscore`, in the view's order. */
export const columns: ReadonlyArray<Column> = [
  std({
    name: "dataproduct_type",
    ...text,
    ucd: "meta.code.class",
    utype: "obscore:ObsDataset.dataProductType",
    description:
      "Data product type (image, cube, spectrum, sed, timeseries, visibility, event, measurements), as recorded for the instrument module; null when not recorded.",
    principal: true
  }),
  std({
    name: "calib_level",
    sqlType: "smallint",
    datatype: "short",
    ucd: "meta.code;obs.calib",
    utype: "obscore:ObsDataset.calibLevel",
    description:
      "Calibration level: 0 raw data that needs the instrument's own tools, 1 raw data in a standard format, 2 calibrated science-ready products, 3 enhanced products (maps and catalogues made from several observations or products).",
    principal: true
  }),
  std({
    name: "obs_collection",
    ...text,
    ucd: "meta.id",
    utype: "obscore:DataID.Collection",
    description: "Name of the data collection.",
    principal: true
  }),
  std({
    name: "obs_id",
    ...text,
    ucd: "meta.id",
    utype: "obscore:DataID.observationID",
    description:
      "Observation id: the ExecutedObsUnit's UUID, shared by the rows of its modules and by products made from it alone; a product of several observations has its own id.",
    principal: true,
    indexed: true
  }),
  std({
    name: "obs_publisher_did",
    ...text,
    ucd: "meta.ref.ivoid",
    utype: "obscore:Curation.PublisherDID",
    description:
      "IVOA dataset identifier given by the publisher: <authority>?<observation id>/<module id> for raw data, <authority>?product/<product id> for a processed product.",
    principal: true
  }),
  std({
    name: "access_url",
    ...text,
    ucd: "meta.ref.url",
    utype: "obscore:Access.Reference",
    description: "DataLink URL listing the data of this observation and module (packages, files, staging).",
    principal: true
  }),
  std({
    name: "access_format",
    ...text,
    ucd: "meta.code.mime",
    utype: "obscore:Access.Format",
    description: "Content type of access_url: a DataLink links response.",
    principal: true
  }),
  std({
    name: "access_estsize",
    ...long,
    unit: "kbyte",
    ucd: "phys.size;meta.file",
    utype: "obscore:Access.Size",
    description: "Size of the archived raw data packages of this observation and module.",
    principal: true
  }),
  std({
    name: "target_name",
    ...text,
    ucd: "meta.id;src",
    utype: "obscore:Target.Name",
    description: "The Source observed, or the planned observation's free-text target when it names no Source.",
    principal: true
  }),
  std({
    name: "s_ra",
    ...double,
    unit: "deg",
    ucd: "pos.eq.ra",
    utype: "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
    description: "ICRS right ascension of the Source; null for solar-system bodies and unlinked targets.",
    principal: true
  }),
  std({
    name: "s_dec",
    ...double,
    unit: "deg",
    ucd: "pos.eq.dec",
    utype: "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
    description: "ICRS declination of the Source; null for solar-system bodies and unlinked targets.",
    principal: true
  }),
  std({
    name: "s_fov",
    ...double,
    unit: "deg",
    ucd: "phys.angSize;instr.fov",
    utype: "obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
    description: "Diameter of the instrument module's field of view.",
    principal: true
  }),
  std({
    name: "s_region",
    ...text,
    xtype: "adql:REGION",
    ucd: "pos.outline;obs.field",
    utype: "obscore:Char.SpatialAxis.Coverage.Support.Area",
    description: "Sky region covered, as STC-S: a circle of the field of view around the Source."
  }),
  std({
    name: "s_resolution",
    ...double,
    unit: "arcsec",
    ucd: "pos.angResolution",
    utype: "obscore:Char.SpatialAxis.Resolution.Refval.value",
    description: "Angular resolution (beam FWHM) of the instrument module."
  }),
  std({
    name: "s_xel1",
    ...long,
    ucd: "meta.number",
    utype: "obscore:Char.SpatialAxis.numBins1",
    description: "Number of elements along the first spatial axis; null for raw data."
  }),
  std({
    name: "s_xel2",
    ...long,
    ucd: "meta.number",
    utype: "obscore:Char.SpatialAxis.numBins2",
    description: "Number of elements along the second spatial axis; null for raw data."
  }),
  std({
    name: "t_min",
    ...double,
    unit: "d",
    ucd: "time.start;obs.exposure",
    utype: "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
    description: "Start of the observation, MJD (UTC).",
    principal: true,
    indexed: true
  }),
  std({
    name: "t_max",
    ...double,
    unit: "d",
    ucd: "time.end;obs.exposure",
    utype: "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
    description: "End of the observation, MJD (UTC).",
    principal: true
  }),
  std({
    name: "t_exptime",
    ...double,
    unit: "s",
    ucd: "time.duration;obs.exposure",
    utype: "obscore:Char.TimeAxis.Coverage.Support.Extent",
    description: "Duration of the observation.",
    principal: true
  }),
  std({
    name: "t_resolution",
    ...double,
    unit: "s",
    ucd: "time.resolution",
    utype: "obscore:Char.TimeAxis.Resolution.Refval.value",
    description: "Temporal resolution; null when not recorded."
  }),
  std({
    name: "t_xel",
    ...long,
    ucd: "meta.number",
    utype: "obscore:Char.TimeAxis.numBins",
    description: "Number of elements along the time axis; null for raw data."
  }),
  std({
    name: "em_min",
    ...double,
    unit: "m",
    ucd: "em.wl;stat.min",
    utype: "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
    description: "Shortest wavelength of the instrument module's band.",
    principal: true
  }),
  std({
    name: "em_max",
    ...double,
    unit: "m",
    ucd: "em.wl;stat.max",
    utype: "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
    description: "Longest wavelength of the instrument module's band.",
    principal: true
  }),
  std({
    name: "em_res_power",
    ...double,
    ucd: "spect.resolution",
    utype: "obscore:Char.SpectralAxis.Resolution.ResolPower.refVal",
    description: "Spectral resolving power λ/Δλ of the instrument module."
  }),
  std({
    name: "em_xel",
    ...long,
    ucd: "meta.number",
    utype: "obscore:Char.SpectralAxis.numBins",
    description: "Number of elements along the spectral axis; null for raw data."
  }),
  std({
    name: "o_ucd",
    ...text,
    ucd: "meta.ucd",
    utype: "obscore:Char.ObservableAxis.ucd",
    description: "UCD of the observable; null for raw data."
  }),
  std({
    name: "pol_states",
    ...text,
    ucd: "meta.code;phys.polarization",
    utype: "obscore:Char.PolarizationAxis.stateList",
    description: "Polarization states the module records, e.g. /I/Q/U/."
  }),
  std({
    name: "pol_xel",
    ...long,
    ucd: "meta.number",
    utype: "obscore:Char.PolarizationAxis.numBins",
    description: "Number of polarization states."
  }),
  std({
    name: "facility_name",
    ...text,
    ucd: "meta.id;instr.tel",
    utype: "obscore:Provenance.ObsConfig.Facility.name",
    description: "The telescope.",
    principal: true
  }),
  std({
    name: "instrument_name",
    ...text,
    ucd: "meta.id;instr",
    utype: "obscore:Provenance.ObsConfig.Instrument.name",
    description: "The instrument.",
    principal: true
  }),
  hidden({
    name: "ccat_program_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id",
    description: "The observing program whose access rules hold for the row."
  }),
  hidden({
    name: "ccat_public_from",
    sqlType: "timestamptz",
    datatype: "char",
    arraysize: "*",
    xtype: "timestamp",
    ucd: "time.release",
    description: "End of the program's proprietary period for this observation (its end plus the period); null: never public."
  }),
  hidden({
    name: "ccat_instrument_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id;instr",
    description: "The instrument (instrument accounts see their instruments' rows)."
  }),
  hidden({
    name: "ccat_observation_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id",
    description: "The ExecutedObsUnit (of a product: the input observation that ended last, whose access rules the product follows)."
  }),
  hidden({
    name: "ccat_instrument_module_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id;instr",
    description: "The InstrumentModule."
  }),
  hidden({ name: "ccat_instrument_module", ...text, ucd: "meta.id;instr", description: "The InstrumentModule's name." }),
  hidden({
    name: "ccat_obs_unit_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id",
    description: "The planned observation (ObsUnit)."
  }),
  hidden({
    name: "ccat_sub_program_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id",
    description: "The ObsUnit's sub-program, if any."
  }),
  hidden({
    name: "ccat_source_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id;src",
    description: "The Source, if the ObsUnit names one."
  }),
  hidden({ name: "ccat_observing_mode", ...text, ucd: "instr.setup", description: "The ObsUnit's observing mode, if any." }),
  hidden({
    name: "ccat_quality",
    ...text,
    ucd: "meta.code.qual",
    description: "The observation's assessed quality (unassessed, good, questionable, bad); null for a product."
  }),
  hidden({ name: "ccat_packages", ...long, ucd: "meta.number", description: "Number of archived packages (raw data, or the product's)." }),
  hidden({
    name: "ccat_data_product_id",
    sqlType: "uuid",
    datatype: "char",
    arraysize: "*",
    ucd: "meta.id",
    description: "The DataProduct of a product row; null for raw data."
  })
]

/** The columns a TAP service publishes (ObsCore's), in order. */
export const publishedColumns: ReadonlyArray<Column> = columns.filter((c) => !c.hidden)

/** The column of this name, if the table has one. */
export const column = (name: string): Column | undefined => columns.find((c) => c.name === name)

/**
 * The publisher settings a TAP/DataLink service and the view share: the IVOA authority that
 * prefixes `obs_publisher_did`, the public base URL (no trailing slash) `access_url` starts
 * with, and the collection name.
 */
export const Publisher = Schema.Struct({
  authority: Schema.String.pipe(
    Schema.pattern(/^ivo:\/\/[A-Za-z0-9][A-Za-z0-9._~-]*(\/[A-Za-z0-9._~-]+)*$/, {
      message: () => "an IVOA authority like ivo://ccat.example.org/archive (letters, digits, . _ ~ -)"
    })
  ),
  baseUrl: Schema.String.pipe(
    Schema.pattern(/^https?:\/\/[^\s?#]+[^/\s?#]$/, { message: () => "an http(s) URL without query, fragment or trailing slash" })
  ),
  collection: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))
}).annotations({ identifier: "ObsCorePublisher" })
/** The publisher settings. */
export type Publisher = typeof Publisher.Type

/** The `obs_publisher_did` of an observation's module, as the view makes it. */
export const publisherDid = (authority: string, observationId: string, moduleId: string): string =>
  `${authority}?${observationId}/${moduleId}`

/** The `obs_publisher_did` of a processed data product, as the view makes it. */
export const productDid = (authority: string, productId: string): string => `${authority}?product/${productId}`

/** The DataLink URL of a dataset, as the view's `access_url` makes it. */
export const datalinkUrl = (baseUrl: string, did: string): string =>
  `${baseUrl}/api/v1/datalink?ID=${did.replaceAll(":", "%3A").replaceAll("/", "%2F").replaceAll("?", "%3F")}`

/** Modified Julian Date of an instant (ObsCore's t_min and t_max). */
export const mjd = (date: Date): number => date.getTime() / 86_400_000 + 40_587
