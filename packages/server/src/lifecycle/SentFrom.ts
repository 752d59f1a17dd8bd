/**
 * Whether a package has left a site, or is on its way from one, as SQL the planners of bundling,
 * repair and forwarding share: a package a site sent on is not bundled there again, nor is a bad
 * copy of it there repaired to be sent.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"

/**
 * SQL: the package `pkg` is in a bundle still on its way (or failed, for an operator to retry),
 * or in one that left from the site `here`: it is not to be bundled at `here` again.
 */
export const inBundleFrom = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  exists (
    select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
    where m.raw_data_package_id = ${pkg}.id
      and (d.status <> 'completed' or exists (
        select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
        where t.data_transfer_package_id = d.id and fl.site_id = ${here})))`
