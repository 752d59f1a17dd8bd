/**
 * The first ops-db schema: every entity of DESIGN §3 and the invariants the database itself
 * keeps (§4): foreign keys, checks on sizes, enums, paths and checksums, idempotent filing keys,
 * an append-only event log. The SQL mirrors `RelativePath.problem`, `Checksum.problem` and
 * `Ids.shortNameProblem` so a row the schemas would refuse is refused here too.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create type site_role as enum ('main', 'secondary');
create type location_type as enum ('SOURCE', 'BUFFER', 'LONG_TERM_ARCHIVE', 'PROCESSING');
create type storage_technology as enum ('disk', 's3', 'tape');
create type operation_status as enum ('pending', 'scheduled', 'in_progress', 'completed', 'failed');
create type physical_copy_status as enum (
  'PRESENT', 'STAGED', 'DELETION_SCHEDULED', 'DELETION_IN_PROGRESS', 'DELETION_POSSIBLE', 'DELETED', 'DELETION_FAILED'
);
create type raw_data_file_state as enum ('filed', 'packaged', 'corrupt', 'missing');
create type observation_quality as enum ('unassessed', 'good', 'questionable', 'bad');
create type account_role as enum ('instrument', 'scientist', 'operator', 'admin');
create type entity_kind as enum (
  'RawDataFile', 'RawDataPackage', 'DataTransferPackage', 'DataTransfer', 'PhysicalCopy', 'StagingRequest'
);

create domain byte_size as bigint check (value >= 0);
create domain checksum as text check (
  value ~ '^(sha256:[0-9a-f]{64}|sha1:[0-9a-f]{40}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32}|blake2b512:[0-9a-f]{128})$'
);
-- NUL cannot occur in a PostgreSQL text value at all; the rest mirrors RelativePath.problem.
create domain relative_path as text check (
  value <> ''
  and octet_length(value) <= 1024
  and value !~ '^[A-Za-z]:/'
  and position(E'\\' in value) = 0
  and value !~ '(^|/)\.{0,2}(/|$)'
);
create domain short_name as text check (value ~ '^[a-z][a-z0-9-]{0,62}$');
create domain display_name as text check (value <> '' and length(value) <= 200);
create domain json_map as jsonb check (jsonb_typeof(value) = 'object');

-- Observational hierarchy -------------------------------------------------------------------

create table observatory (
  id uuid primary key default gen_random_uuid(),
  name display_name not null unique,
  description text not null default '',
  created_at timestamptz not null default now()
);

create table telescope (
  id uuid primary key default gen_random_uuid(),
  observatory_id uuid not null references observatory (id),
  name display_name not null,
  description text not null default '',
  created_at timestamptz not null default now(),
  unique (observatory_id, name)
);

create table instrument (
  id uuid primary key default gen_random_uuid(),
  telescope_id uuid not null references telescope (id),
  name display_name not null,
  description text not null default '',
  created_at timestamptz not null default now(),
  unique (telescope_id, name)
);

create table instrument_module (
  id uuid primary key default gen_random_uuid(),
  instrument_id uuid not null references instrument (id),
  name display_name not null,
  description text not null default '',
  created_at timestamptz not null default now(),
  unique (instrument_id, name)
);

create table observing_program (
  id uuid primary key default gen_random_uuid(),
  name display_name not null unique,
  title text not null default '',
  created_at timestamptz not null default now()
);

create table obs_unit (
  id uuid primary key default gen_random_uuid(),
  observing_program_id uuid not null references observing_program (id),
  instrument_id uuid not null references instrument (id),
  name display_name not null,
  target text not null default '',
  planned_duration_seconds double precision check (planned_duration_seconds >= 0),
  configuration json_map not null default '{}',
  created_at timestamptz not null default now(),
  unique (observing_program_id, name)
);

create table executed_obs_unit (
  id uuid primary key,
  obs_unit_id uuid not null references obs_unit (id),
  start_at timestamptz not null,
  end_at timestamptz,
  status operation_status not null,
  conditions json_map not null default '{}',
  quality observation_quality not null default 'unassessed',
  metadata json_map not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (end_at is null or end_at >= start_at)
);
create index executed_obs_unit_obs_unit on executed_obs_unit (obs_unit_id);
create index executed_obs_unit_start on executed_obs_unit (start_at);

-- Storage hierarchy -------------------------------------------------------------------------

create table site (
  id uuid primary key default gen_random_uuid(),
  name display_name not null unique,
  short_name short_name not null unique,
  role site_role not null,
  created_at timestamptz not null default now()
);

create table data_location (
  id uuid primary key default gen_random_uuid(),
  site_id uuid not null references site (id),
  name short_name not null unique,
  type location_type not null,
  technology storage_technology not null,
  driver_config json_map not null default '{}',
  priority integer not null default 0,
  readable boolean not null default true,
  writable boolean not null default true,
  deletable boolean not null default true,
  capacity_bytes byte_size,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- target of the composite keys that pin a reference to one location type
  unique (id, type)
);
create index data_location_site on data_location (site_id, type, priority);

create table route (
  id uuid primary key default gen_random_uuid(),
  from_site_id uuid not null references site (id),
  to_site_id uuid not null references site (id),
  via_site_id uuid references site (id),
  adapter display_name not null,
  options json_map not null default '{}',
  priority integer not null default 0,
  created_at timestamptz not null default now(),
  check (from_site_id <> to_site_id),
  check (via_site_id is null or (via_site_id <> from_site_id and via_site_id <> to_site_id)),
  unique nulls not distinct (from_site_id, to_site_id, via_site_id, adapter)
);

create table retention_policy (
  id uuid primary key default gen_random_uuid(),
  data_location_id uuid not null unique references data_location (id),
  min_age_seconds bigint not null default 0 check (min_age_seconds >= 0),
  disk_usage_threshold double precision check (disk_usage_threshold > 0 and disk_usage_threshold <= 1),
  required_archive_copies integer not null default 1 check (required_archive_copies >= 1),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Data hierarchy ----------------------------------------------------------------------------

create table raw_data_package (
  id uuid primary key default gen_random_uuid(),
  executed_obs_unit_id uuid not null references executed_obs_unit (id),
  instrument_module_id uuid not null references instrument_module (id),
  relative_path relative_path not null unique,
  size_bytes byte_size,
  checksum checksum,
  status operation_status not null default 'pending',
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (status <> 'completed' or (size_bytes is not null and checksum is not null))
);
create index raw_data_package_open on raw_data_package (status) where status <> 'completed';
create index raw_data_package_eou on raw_data_package (executed_obs_unit_id, instrument_module_id);

create table raw_data_file (
  id uuid primary key,
  executed_obs_unit_id uuid not null references executed_obs_unit (id),
  instrument_module_id uuid not null references instrument_module (id),
  relative_path relative_path not null,
  size_bytes byte_size not null,
  checksum checksum not null,
  source_location_id uuid not null,
  source_location_type location_type not null default 'SOURCE' check (source_location_type = 'SOURCE'),
  raw_data_package_id uuid references raw_data_package (id),
  state raw_data_file_state not null default 'filed',
  filed_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (executed_obs_unit_id, relative_path),
  foreign key (source_location_id, source_location_type) references data_location (id, type),
  check (state <> 'packaged' or raw_data_package_id is not null)
);
create index raw_data_file_unpackaged on raw_data_file (executed_obs_unit_id, instrument_module_id)
  where state = 'filed' and raw_data_package_id is null;
create index raw_data_file_package on raw_data_file (raw_data_package_id);
create index raw_data_file_damaged on raw_data_file (state) where state in ('corrupt', 'missing');

create table data_transfer_package (
  id uuid primary key default gen_random_uuid(),
  relative_path relative_path not null unique,
  size_bytes byte_size,
  checksum checksum,
  status operation_status not null default 'pending',
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index data_transfer_package_open on data_transfer_package (status) where status <> 'completed';

create table data_transfer_package_member (
  data_transfer_package_id uuid not null references data_transfer_package (id),
  raw_data_package_id uuid not null references raw_data_package (id),
  primary key (data_transfer_package_id, raw_data_package_id)
);
create index data_transfer_package_member_rdp on data_transfer_package_member (raw_data_package_id);

create table data_transfer (
  id uuid primary key default gen_random_uuid(),
  data_transfer_package_id uuid references data_transfer_package (id),
  raw_data_package_id uuid references raw_data_package (id),
  route_id uuid references route (id),
  from_location_id uuid not null references data_location (id),
  to_location_id uuid not null references data_location (id),
  previous_attempt_id uuid unique references data_transfer (id),
  attempt integer not null default 1 check (attempt >= 1),
  adapter display_name not null,
  status operation_status not null default 'pending',
  bytes_transferred byte_size not null default 0,
  duration_ms bigint check (duration_ms >= 0),
  throughput_bytes_per_second double precision check (throughput_bytes_per_second >= 0),
  error_reason text,
  error_message text,
  retryable boolean,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (num_nonnulls(data_transfer_package_id, raw_data_package_id) = 1),
  check (from_location_id <> to_location_id),
  check (previous_attempt_id is null or previous_attempt_id <> id),
  check ((previous_attempt_id is null) = (attempt = 1)),
  check (finished_at is null or started_at is null or finished_at >= started_at)
);
create index data_transfer_open on data_transfer (status) where status in ('pending', 'scheduled', 'in_progress');
create index data_transfer_dtp on data_transfer (data_transfer_package_id);
create index data_transfer_rdp on data_transfer (raw_data_package_id);

create table physical_copy (
  id uuid primary key default gen_random_uuid(),
  raw_data_file_id uuid references raw_data_file (id),
  raw_data_package_id uuid references raw_data_package (id),
  data_transfer_package_id uuid references data_transfer_package (id),
  data_location_id uuid not null references data_location (id),
  path relative_path not null,
  size_bytes byte_size not null,
  checksum checksum not null,
  status physical_copy_status not null,
  verified_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (num_nonnulls(raw_data_file_id, raw_data_package_id, data_transfer_package_id) = 1)
);
-- One live copy of a thing per location; DELETED rows stay as history.
create unique index physical_copy_file_live on physical_copy (data_location_id, raw_data_file_id)
  where raw_data_file_id is not null and status <> 'DELETED';
create unique index physical_copy_package_live on physical_copy (data_location_id, raw_data_package_id)
  where raw_data_package_id is not null and status <> 'DELETED';
create unique index physical_copy_bundle_live on physical_copy (data_location_id, data_transfer_package_id)
  where data_transfer_package_id is not null and status <> 'DELETED';
create unique index physical_copy_path_live on physical_copy (data_location_id, path) where status <> 'DELETED';
create index physical_copy_deletion on physical_copy (data_location_id, status)
  where status in ('DELETION_POSSIBLE', 'DELETION_SCHEDULED', 'DELETION_IN_PROGRESS', 'DELETION_FAILED');
create index physical_copy_rdp on physical_copy (raw_data_package_id, status) where raw_data_package_id is not null;

-- Requests and people -----------------------------------------------------------------------

create table account (
  id uuid primary key default gen_random_uuid(),
  name short_name not null unique,
  display_name display_name not null,
  email text check (email is null or email ~ '^[^@\s]+@[^@\s]+$'),
  role account_role not null,
  active boolean not null default true,
  created_at timestamptz not null default now()
);

create table api_token (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references account (id),
  label text not null default '',
  prefix text not null unique check (prefix ~ '^[A-Za-z0-9]{8,16}$'),
  secret_sha256 text not null check (secret_sha256 ~ '^[0-9a-f]{64}$'),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now()
);
create index api_token_account on api_token (account_id);

create table program_access (
  account_id uuid not null references account (id),
  observing_program_id uuid not null references observing_program (id),
  granted_at timestamptz not null default now(),
  primary key (account_id, observing_program_id)
);

create table instrument_access (
  account_id uuid not null references account (id),
  instrument_id uuid not null references instrument (id),
  granted_at timestamptz not null default now(),
  primary key (account_id, instrument_id)
);

create table staging_request (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references account (id),
  data_location_id uuid not null,
  data_location_type location_type not null default 'PROCESSING' check (data_location_type = 'PROCESSING'),
  status operation_status not null default 'pending',
  expires_at timestamptz,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (data_location_id, data_location_type) references data_location (id, type)
);
create index staging_request_open on staging_request (status) where status in ('pending', 'scheduled', 'in_progress');
create index staging_request_expiry on staging_request (expires_at) where status = 'completed';

create table staging_request_item (
  id uuid primary key default gen_random_uuid(),
  staging_request_id uuid not null references staging_request (id),
  raw_data_package_id uuid references raw_data_package (id),
  executed_obs_unit_id uuid references executed_obs_unit (id),
  check (num_nonnulls(raw_data_package_id, executed_obs_unit_id) = 1)
);
create index staging_request_item_request on staging_request_item (staging_request_id);

-- Audit -------------------------------------------------------------------------------------

create table event_log (
  id bigint generated always as identity primary key,
  entity_kind entity_kind not null,
  entity_id uuid not null,
  from_state text,
  to_state text not null,
  at timestamptz not null default clock_timestamp(),
  actor display_name not null default 'system',
  details json_map not null default '{}'
);
create index event_log_entity on event_log (entity_kind, entity_id, id);

create function event_log_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'event_log is append-only: % is not allowed', tg_op
    using errcode = 'object_not_in_prerequisite_state', hint = 'record a new event instead';
end
$$;
create trigger event_log_no_update before update or delete on event_log
  for each row execute function event_log_append_only();
create trigger event_log_no_truncate before truncate on event_log
  for each statement execute function event_log_append_only();
`

/** Creates the types, domains, tables, indexes and triggers of the first ops-db schema. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
