/**
 * What the real-InfluxDB tests share: the host tag the pushers write (one that needs escaping),
 * InfluxQL queries as a user, counting pushes, the pusher's write URL, and a bounded wait.
 */
import { waitUntil } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as RealInflux from "./RealInflux.js"

/** A host tag with a space, a comma and an equals sign: each must be escaped to survive. */
export const host = "ccat test, rack=2"

/** An InfluxQL statement's answer, as the admin or the given user. */
export const query = (q: string, as?: RealInflux.User) =>
  Effect.flatMap(RealInflux.RealInflux, (influx) => Effect.promise(() => influx.query(q, as)))

/** Points of `ccat_ops_db_up` written since `sinceMs`: one per push. */
export const pushesSince = (sinceMs: number) =>
  Effect.map(query(`SELECT count("value") FROM "ccat_ops_db_up" WHERE time > ${sinceMs}ms`), (s) => Number(s[0]?.values[0]?.[1] ?? 0))

/** The write URL of the test database, or with another query string. */
export const pusherUrl = (influx: RealInflux.Server, query = `db=${influx.database}&rp=${influx.retentionPolicy}&precision=ms`) =>
  `${influx.base}/write?${query}`

/** Waits until `done` holds, checking every 200 ms, for at most `ms`. */
export const waitFor = <E, R>(what: string, done: Effect.Effect<boolean, E, R>, ms = 30_000) =>
  waitUntil(what, done, ms, { intervalMs: 200 })
