/**
 * Indexes for the DataProduct list, which pages by keyset on (created_at, id) like every list:
 * the page order itself, and the same order within a program (the program filter and a
 * scientist's scope) and within a pipeline, so a filtered page reads its own rows and not the
 * products of every other program or pipeline. The observation filter reads
 * `data_product_observation` by its observation index (0024); calib_level (two values) and the
 * journey are checked on the rows of the page order.
 *
 * Plain CREATE INDEX in the migrations' transaction, as in 0013: `if not exists` finds an index an
 * operator built beforehand with CREATE INDEX CONCURRENTLY under the same name.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create index if not exists data_product_page on data_product (created_at, id);
create index if not exists data_product_program_page on data_product (observing_program_id, created_at, id);
create index if not exists data_product_pipeline_page on data_product (pipeline, created_at, id);
`

/** Adds the DataProduct list's page-order indexes: overall, per program and per pipeline. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
