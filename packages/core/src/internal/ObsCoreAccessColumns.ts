/**
 * The columns of `ivoa.obscore` that are ours, not ObsCore's: which program, instrument,
 * observation and product a row belongs to and when it becomes public. A TAP service uses them
 * for its access rules and links and never publishes them; they follow ObsCore's in the view.
 */
import { type Column, hidden, long, text } from "./ObsCoreColumn.js"

/** The hidden columns, in the view's order (after ObsCore's). */
export const accessColumns: ReadonlyArray<Column> = [
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
