/**
 * How the API reads request bodies: exactly as the OpenAPI document describes them, which says
 * no property beyond the named ones is allowed. A field the contract does not name is refused
 * with a 400 naming it, never silently ignored: a misspelled optional field (`endAt` as `endat`)
 * would otherwise file an observation without what its sender meant to say.
 */

/** The annotation that makes a request body's Schema refuse properties it does not name (nested ones too). */
export const strict = { parseOptions: { onExcessProperty: "error" } } as const
