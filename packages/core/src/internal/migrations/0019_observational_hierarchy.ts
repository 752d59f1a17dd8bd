/**
 * The seed's observational hierarchy, whole: SubObservingProgram under ObservingProgram, Source
 * (ICRS coordinates in degrees, or a solar-system body) referenced by ObsUnits, ObservingMode,
 * the wavelength band and ObsCore facts of an InstrumentModule, and the proprietary period of a
 * program. Every new column is nullable or has a default, so rows of an existing ops-db stay
 * as they are: an ObsUnit keeps its free-text `target` and has no Source until an admin links
 * one (no coordinates are invented), a program without a period is never public.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
alter table observing_program
  add column proprietary_period_days integer check (proprietary_period_days between 0 and 36500);

create table sub_observing_program (
  id uuid primary key default gen_random_uuid(),
  observing_program_id uuid not null references observing_program (id),
  name display_name not null,
  title text not null default '',
  created_at timestamptz not null default now(),
  unique (observing_program_id, name),
  -- target of the ObsUnit key that keeps a unit's sub-program inside the unit's program
  unique (id, observing_program_id)
);

create table source (
  id uuid primary key default gen_random_uuid(),
  name display_name not null,
  ra_deg double precision check (ra_deg >= 0 and ra_deg < 360),
  dec_deg double precision check (dec_deg between -90 and 90),
  solar_system boolean not null default false,
  description text not null default '',
  created_at timestamptz not null default now(),
  constraint source_position_whole check ((ra_deg is null) = (dec_deg is null)),
  constraint source_position_known check (solar_system or ra_deg is not null)
);
-- "Orion KL" and "orion kl" are the same source.
create unique index source_name on source (lower(name));

create table observing_mode (
  id uuid primary key default gen_random_uuid(),
  name display_name not null,
  description text not null default '',
  created_at timestamptz not null default now()
);
create unique index observing_mode_name on observing_mode (lower(name));

-- ccat:compatible the new key holds only rows whose new sub_observing_program_id is set, which the previous release never writes
alter table obs_unit
  add column sub_observing_program_id uuid,
  add column source_id uuid references source (id),
  add column observing_mode_id uuid references observing_mode (id),
  add constraint obs_unit_sub_program_in_program foreign key (sub_observing_program_id, observing_program_id)
    references sub_observing_program (id, observing_program_id);
create index obs_unit_source on obs_unit (source_id) where source_id is not null;
create index obs_unit_sub_program on obs_unit (sub_observing_program_id) where sub_observing_program_id is not null;

alter table instrument_module
  add column em_min double precision check (em_min > 0 and em_min < 'Infinity'),
  add column em_max double precision check (em_max > 0 and em_max < 'Infinity'),
  add column em_res_power double precision check (em_res_power > 0 and em_res_power < 'Infinity'),
  add column dataproduct_type text check (dataproduct_type in ('image', 'cube', 'spectrum', 'sed', 'timeseries', 'visibility', 'event', 'measurements')),
  add column raw_calib_level smallint not null default 0 check (raw_calib_level in (0, 1)),
  add column pol_states text check (pol_states ~ '^/((I|Q|U|V|RR|LL|RL|LR|XX|YY|XY|YX|POLI|POLA)/)+$'),
  add column fov_deg double precision check (fov_deg > 0 and fov_deg <= 180),
  add column resolution_arcsec double precision check (resolution_arcsec > 0 and resolution_arcsec < 'Infinity'),
  add constraint instrument_module_band_whole check ((em_min is null) = (em_max is null)),
  add constraint instrument_module_band_order check (em_min <= em_max);
`

/** Adds SubObservingProgram, Source, ObservingMode, the ObsUnit references, module bands and proprietary periods. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
