/**
 * Where a transfer reads from or writes to: a path on this machine, or a path on a host reached
 * over ssh. Routes store these in the ops-db as adapter options, so they are Schemas.
 */
import * as Schema from "effect/Schema"

/** Why an absolute path is unsafe to hand to a transfer tool, or undefined when it is fine. */
export const pathProblem = (path: string): string | undefined => {
  if (!path.startsWith("/")) return "a transfer path must be absolute (tools resolve relative paths differently)"
  if (path.includes("\0")) return "a transfer path must not contain a NUL character"
  if (path.split("/").some((p) => p === "..")) return "a transfer path must not contain a .. segment"
  if (path !== "/" && path.endsWith("/")) return "a transfer path must not end with / (its meaning differs between tools)"
  return undefined
}

/** An absolute path, validated so that every tool reads it the same way. */
export const AbsolutePath = Schema.String.pipe(
  Schema.filter((s) => pathProblem(s) ?? true, { identifier: "AbsolutePath" })
)

/** A path on the machine that runs the transfer. */
export const Local = Schema.TaggedStruct("Local", {
  path: AbsolutePath,
  /** The site the location belongs to, for logs and spans only. */
  site: Schema.optional(Schema.String)
})
/** A path on the machine that runs the transfer. */
export type Local = typeof Local.Type

/** A path on another host, reached over ssh (user, port, identity file and extra options). */
export const Ssh = Schema.TaggedStruct("Ssh", {
  host: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._:-]+$/)),
  path: AbsolutePath,
  user: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._-]+$/))),
  port: Schema.optional(Schema.Int.pipe(Schema.between(1, 65535))),
  identityFile: Schema.optional(Schema.String),
  /** Extra `-o Key=Value` options, e.g. `StrictHostKeyChecking=yes`, `UserKnownHostsFile=...`. */
  sshOptions: Schema.optional(Schema.Array(Schema.String)),
  site: Schema.optional(Schema.String)
})
/** A path on another host, reached over ssh. */
export type Ssh = typeof Ssh.Type

/** Either end of a transfer. */
export const Endpoint = Schema.Union(Local, Ssh)
/** Either end of a transfer. */
export type Endpoint = typeof Endpoint.Type

/** A local endpoint; throws on an unsafe path, since a bad path here is a programming error. */
export const local = (path: string, site?: string): Local => {
  const p = pathProblem(path)
  if (p !== undefined) throw new Error(`${p}: ${path}`)
  return site === undefined ? { _tag: "Local", path } : { _tag: "Local", path, site }
}

/** An ssh endpoint; throws on an unsafe path, since a bad path here is a programming error. */
export const ssh = (options: Omit<Ssh, "_tag">): Ssh => {
  const p = pathProblem(options.path)
  if (p !== undefined) throw new Error(`${p}: ${options.path}`)
  return { _tag: "Ssh", ...options }
}

/** The same endpoint at another path (e.g. a temporary or partial name next to it). */
export const withPath = <E extends Endpoint>(endpoint: E, path: string): E => ({ ...endpoint, path })

/** A short human label: `path` or `user@host:port:path`. */
export const format = (endpoint: Endpoint): string =>
  endpoint._tag === "Local"
    ? endpoint.path
    : `${endpoint.user === undefined ? "" : `${endpoint.user}@`}${endpoint.host}${
      endpoint.port === undefined ? "" : `:${endpoint.port}`
    }:${endpoint.path}`

/**
 * The route options that say how to reach the next hop's buffer over ssh, shared by every adapter
 * that pushes over ssh (rsync, bbcp): each one's options schema extends this one. Without `host`
 * both buffers are folders of the machine that runs the transfer.
 */
export const SshRouteOptions = Schema.Struct({
  host: Schema.optionalWith(Schema.String.pipe(Schema.filter((h) => /^[^\s/]+$/.test(h) || "must be a host name or address")), {
    exact: true
  }),
  user: Schema.optionalWith(Schema.String.pipe(Schema.filter((u) => /^[^\s@:]+$/.test(u) || "must be a user name")), { exact: true }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.filter((p) => (p >= 1 && p <= 65535) || `must be a port from 1 to 65535, got ${p}`)), {
    exact: true
  }),
  identityFile: Schema.optionalWith(Schema.String.pipe(Schema.filter((f) => f.startsWith("/") || "must be an absolute path")), {
    exact: true
  }),
  sshOptions: Schema.optionalWith(Schema.Array(Schema.String), { exact: true }),
  /** Where the next hop's buffer is on the far host, when it differs from its location's root. */
  destinationRoot: Schema.optionalWith(Schema.String.pipe(Schema.filter((f) => f.startsWith("/") || "must be an absolute path")), {
    exact: true
  })
})
