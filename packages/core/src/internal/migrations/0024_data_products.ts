/**
 * Processed results back into the archive (the seed's stage 5). A DataProduct is what a
 * pipeline made at a PROCESSING location from archived data: its files are RawDataFiles filed
 * at that location with the product's id, so the packaging, archiving, audit, repair and cleanup
 * stages handle them as they handle an instrument's files, and its packages carry the product's
 * id so ObsCore and DataLink tell them from raw data. Every file and package of the lifecycle
 * belongs to an observation and a module: a product's belong to its *anchor*, the input
 * observation that ended last (so the product's access rules are that observation's, the latest
 * of its inputs'), and a module of that observation.
 *
 * `data_product_input` is the provenance as filed (observations, packages or other products, in
 * the filer's order); `data_product_observation` every observation the product derives from,
 * directly or through its input products, fixed at filing (a product never changes), for
 * ObsCore's times and DataLink's `#derivation` of an observation.
 *
 * The ObsCore view keeps its columns and gains one hidden column at the end; raw rows leave out
 * product packages, and each archived product is one more row at its calib_level (2 or 3).
 * The previous release's packager groups files by observation and module only: products are
 * filed through this release's API, so let every worker run this release before filing them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create table data_product (
  id uuid primary key,
  name display_name not null,
  pipeline display_name not null,
  pipeline_version text not null check (pipeline_version ~ '^[^\s].{0,99}$'),
  parameters json_map not null default '{}',
  calib_level smallint not null check (calib_level in (2, 3)),
  dataproduct_type text not null check (dataproduct_type in ('image', 'cube', 'spectrum', 'sed', 'timeseries', 'visibility', 'event', 'measurements')),
  observing_program_id uuid not null references observing_program (id),
  executed_obs_unit_id uuid not null references executed_obs_unit (id),
  instrument_module_id uuid not null references instrument_module (id),
  processing_location_id uuid not null references data_location (id),
  account_id uuid not null references account (id),
  created_at timestamptz not null default now()
);
-- names identify products to people: "M83 map" and "m83 map" are the same product
create unique index data_product_name on data_product (lower(name));
create index data_product_program on data_product (observing_program_id);

create table data_product_input (
  data_product_id uuid not null references data_product (id),
  position integer not null check (position >= 0),
  executed_obs_unit_id uuid references executed_obs_unit (id),
  raw_data_package_id uuid references raw_data_package (id),
  input_product_id uuid references data_product (id),
  primary key (data_product_id, position),
  check (num_nonnulls(executed_obs_unit_id, raw_data_package_id, input_product_id) = 1),
  check (input_product_id is null or input_product_id <> data_product_id)
);
create index data_product_input_product on data_product_input (input_product_id) where input_product_id is not null;

create table data_product_observation (
  data_product_id uuid not null references data_product (id),
  executed_obs_unit_id uuid not null references executed_obs_unit (id),
  primary key (data_product_id, executed_obs_unit_id)
);
create index data_product_observation_eou on data_product_observation (executed_obs_unit_id);

alter table raw_data_file add column data_product_id uuid references data_product (id);
create index raw_data_file_product on raw_data_file (data_product_id) where data_product_id is not null;
alter table raw_data_package add column data_product_id uuid references data_product (id);
create index raw_data_package_product on raw_data_package (data_product_id) where data_product_id is not null;

-- ccat:compatible the previous release files only at SOURCE, which the new check still accepts, and reads nothing it changes
alter table raw_data_file
  drop constraint raw_data_file_source_location_type_check,
  add constraint raw_data_file_source_location_type_check
    check (source_location_type = 'SOURCE' or (source_location_type = 'PROCESSING' and data_product_id is not null));

create or replace view ivoa.obscore as
select
  m.dataproduct_type::text                                        as dataproduct_type,
  m.raw_calib_level::smallint                                     as calib_level,
  pub.collection::text                                            as obs_collection,
  e.id::text                                                      as obs_id,
  d.did                                                           as obs_publisher_did,
  pub.base_url || '/api/v1/datalink?ID=' || ivoa.encode_did(d.did) as access_url,
  'application/x-votable+xml;content=datalink'::text              as access_format,
  ceil(a.size_bytes / 1024.0)::bigint                             as access_estsize,
  coalesce(s.name::text, nullif(u.target, ''))                    as target_name,
  s.ra_deg                                                        as s_ra,
  s.dec_deg                                                       as s_dec,
  m.fov_deg                                                       as s_fov,
  case when s.ra_deg is not null and m.fov_deg is not null
    then 'Circle ICRS ' || s.ra_deg || ' ' || s.dec_deg || ' ' || (m.fov_deg / 2) end as s_region,
  m.resolution_arcsec                                             as s_resolution,
  null::bigint                                                    as s_xel1,
  null::bigint                                                    as s_xel2,
  ivoa.mjd(e.start_at)                                            as t_min,
  ivoa.mjd(e.end_at)                                              as t_max,
  extract(epoch from e.end_at - e.start_at)::double precision     as t_exptime,
  null::double precision                                          as t_resolution,
  null::bigint                                                    as t_xel,
  m.em_min                                                        as em_min,
  m.em_max                                                        as em_max,
  m.em_res_power                                                  as em_res_power,
  null::bigint                                                    as em_xel,
  null::text                                                      as o_ucd,
  m.pol_states                                                    as pol_states,
  case when m.pol_states is null then null
    else (length(m.pol_states) - length(replace(m.pol_states, '/', '')) - 1)::bigint end as pol_xel,
  t.name::text                                                    as facility_name,
  i.name::text                                                    as instrument_name,
  u.observing_program_id                                          as ccat_program_id,
  case when p.proprietary_period_days is null then null
    else e.end_at + make_interval(days => p.proprietary_period_days) end as ccat_public_from,
  i.id                                                            as ccat_instrument_id,
  e.id                                                            as ccat_observation_id,
  m.id                                                            as ccat_instrument_module_id,
  m.name::text                                                    as ccat_instrument_module,
  u.id                                                            as ccat_obs_unit_id,
  u.sub_observing_program_id                                      as ccat_sub_program_id,
  s.id                                                            as ccat_source_id,
  om.name::text                                                   as ccat_observing_mode,
  e.quality::text                                                 as ccat_quality,
  a.packages                                                      as ccat_packages,
  null::uuid                                                      as ccat_data_product_id
from executed_obs_unit e
join obs_unit u on u.id = e.obs_unit_id
join observing_program p on p.id = u.observing_program_id
join instrument i on i.id = u.instrument_id
join telescope t on t.id = i.telescope_id
join instrument_module m on m.instrument_id = i.id
left join source s on s.id = u.source_id
left join observing_mode om on om.id = u.observing_mode_id
cross join ivoa.publisher pub
cross join lateral (
  select count(*) as packages, sum(r.size_bytes) as size_bytes, bool_and(r.status = 'completed') as archived
  from raw_data_package r
  where r.executed_obs_unit_id = e.id and r.instrument_module_id = m.id and r.data_product_id is null
) a
cross join lateral (select pub.authority || '?' || e.id || '/' || m.id as did) d
where e.status = 'completed'
  and e.end_at is not null
  and a.packages > 0
  and a.archived
  and not exists (
    select 1 from raw_data_file f
    where f.executed_obs_unit_id = e.id and f.instrument_module_id = m.id
      and f.state = 'filed' and f.raw_data_package_id is null and f.data_product_id is null
  )
union all
select
  dp.dataproduct_type,
  dp.calib_level,
  pub.collection::text,
  -- a product of one observation shares its obs_id, one of several is an observation of its own
  case when o.observations = 1 then o.only_id::text else dp.id::text end,
  d.did,
  pub.base_url || '/api/v1/datalink?ID=' || ivoa.encode_did(d.did),
  'application/x-votable+xml;content=datalink'::text,
  ceil(a.size_bytes / 1024.0)::bigint,
  coalesce(s.name::text, nullif(u.target, '')),
  s.ra_deg,
  s.dec_deg,
  m.fov_deg,
  case when s.ra_deg is not null and m.fov_deg is not null
    then 'Circle ICRS ' || s.ra_deg || ' ' || s.dec_deg || ' ' || (m.fov_deg / 2) end,
  m.resolution_arcsec,
  null::bigint,
  null::bigint,
  ivoa.mjd(o.start_at),
  ivoa.mjd(o.end_at),
  o.exptime,
  null::double precision,
  null::bigint,
  m.em_min,
  m.em_max,
  m.em_res_power,
  null::bigint,
  null::text,
  m.pol_states,
  case when m.pol_states is null then null
    else (length(m.pol_states) - length(replace(m.pol_states, '/', '')) - 1)::bigint end,
  t.name::text,
  i.name::text,
  dp.observing_program_id,
  -- public once the last of its observations is: the period of the program after the latest end
  case when p.proprietary_period_days is null then null
    else o.end_at + make_interval(days => p.proprietary_period_days) end,
  i.id,
  e.id,
  m.id,
  m.name::text,
  u.id,
  u.sub_observing_program_id,
  s.id,
  om.name::text,
  null::text,
  a.packages,
  dp.id
from data_product dp
join observing_program p on p.id = dp.observing_program_id
join executed_obs_unit e on e.id = dp.executed_obs_unit_id
join obs_unit u on u.id = e.obs_unit_id
join instrument i on i.id = u.instrument_id
join telescope t on t.id = i.telescope_id
join instrument_module m on m.id = dp.instrument_module_id
left join source s on s.id = u.source_id
left join observing_mode om on om.id = u.observing_mode_id
cross join ivoa.publisher pub
cross join lateral (
  select count(*) as packages, sum(r.size_bytes) as size_bytes, bool_and(r.status = 'completed') as archived
  from raw_data_package r where r.data_product_id = dp.id
) a
cross join lateral (
  select count(*) as observations, min(x.id::text)::uuid as only_id, min(x.start_at) as start_at, max(x.end_at) as end_at,
         sum(extract(epoch from x.end_at - x.start_at))::double precision as exptime
  from data_product_observation po join executed_obs_unit x on x.id = po.executed_obs_unit_id
  where po.data_product_id = dp.id
) o
cross join lateral (select pub.authority || '?product/' || dp.id as did) d
where a.packages > 0
  and a.archived
  and not exists (select 1 from raw_data_file f where f.data_product_id = dp.id and f.state = 'filed' and f.raw_data_package_id is null);
`

/** Adds DataProducts with their provenance, marks their files and packages, and lists archived products in ObsCore. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
