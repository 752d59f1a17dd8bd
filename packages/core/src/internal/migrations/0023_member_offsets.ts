/**
 * Where each RawDataFile sits inside its package's tar: the offset of its own header (after any
 * folder headers before it) and of its first data byte. With these a single file is served by a
 * ranged read of any online copy of the package (an S3 range GET, a disk seek) instead of
 * staging the whole package. The packager records them when it commits a package; packages
 * written before this migration get theirs the first time one of their files is asked for, by
 * reading the archive's manifest once (the tar's layout is a pure function of the manifest).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create table raw_data_package_member (
  raw_data_package_id uuid not null references raw_data_package (id) on delete cascade,
  raw_data_file_id uuid not null references raw_data_file (id) on delete cascade,
  header_offset bigint not null check (header_offset >= 0 and header_offset % 512 = 0),
  data_offset bigint not null check (data_offset >= header_offset + 512 and data_offset % 512 = 0),
  size_bytes bigint not null check (size_bytes >= 0),
  recorded_at timestamptz not null default now(),
  primary key (raw_data_file_id, raw_data_package_id)
);
create index raw_data_package_member_package on raw_data_package_member (raw_data_package_id);
`

/** Creates `raw_data_package_member`, one row per file of a package, with its offsets in the tar. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
