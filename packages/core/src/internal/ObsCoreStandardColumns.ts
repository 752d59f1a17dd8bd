/**
 * ObsCore 1.1's columns of `ivoa.obscore`, in the view's order: what a TAP service publishes.
 */
import { type Column, double, long, std, text } from "./ObsCoreColumn.js"

/** ObsCore's columns of the view, in its order. */
export const standardColumns: ReadonlyArray<Column> = [
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
  })
]
