/**
 * The built-in storage drivers as the server registers them: disk, s3 and tape. An integrator's
 * server registers these and its own (`[...Drivers.builtIn, myDriver]`).
 */
import type { StorageDriverRegistry } from "@ccat/core"
import * as DiskLocation from "./DiskLocation.js"
import * as S3Location from "./S3Location.js"
import * as TapeLocation from "./TapeLocation.js"

/** disk, s3 and tape. */
export const builtIn: ReadonlyArray<StorageDriverRegistry.Driver> = [DiskLocation.driver, S3Location.driver, TapeLocation.driver]
