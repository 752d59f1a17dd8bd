/**
 * The checks of the ops-db's `checksum` and `relative_path` domains in a form PostgreSQL
 * evaluates cheaply, beside the form migration 0001 gave them, and the probes on which the two
 * must agree. Every file and every copy carries one value of each domain, so each insert pays
 * both checks.
 *
 * 0001's checksum check is one regular expression with counted repetitions
 * (`sha256:[0-9a-f]{64}|…`): PostgreSQL builds a large automaton for it whose states are made
 * again on every match, about 35 µs of CPU a value, more than the rest of a file's row. The fast
 * form picks the algorithm by its prefix, compares the length in bytes and leaves one regular
 * expression without counts for the digits (about 1 µs). The path check's second regular
 * expression (`(^|/)\.{0,2}(/|$)`: an empty, `.` or `..` segment) becomes three substring
 * searches in the path framed by slashes, and its drive-letter expression a comparison of code
 * points (about a third of the check's cost saved).
 *
 * Migration 0028 installs these definitions, so they must never change: a different check is a
 * new migration with a definition of its own.
 */

/** A domain check in both forms, and the values that must show they accept the same set. */
export interface DomainCheck {
  readonly domain: string
  /** The constraint's name, the same in both forms (errors name it). */
  readonly constraint: string
  /** Migration 0001's condition over an SQL expression (`value` for the domain itself). */
  readonly original: (value: string) => string
  /** The same accepted set, null included (a null passes both), costing a fraction. */
  readonly fast: (value: string) => string
  /** Values on both sides of every rule of the check; null among them. */
  readonly probes: ReadonlyArray<string | null>
}

/** The hash algorithms the checksum domain accepts and the hex digits of each. */
const algorithms: ReadonlyArray<readonly [string, number]> = [
  ["sha256", 64],
  ["sha1", 40],
  ["sha512", 128],
  ["md5", 32],
  ["blake2b512", 128]
]

const checksumProbes = (): Array<string | null> => {
  const hex = (n: number, c = "a") => c.repeat(Math.max(n, 0))
  const out: Array<string | null> = [
    null,
    "",
    ":",
    "sha256",
    "sha256:",
    "SHA256:" + hex(64),
    " sha256:" + hex(64),
    "sha256:" + hex(64) + "\n",
    "sha256:" + hex(63) + "\n",
    "sha256::" + hex(63),
    "sha256:" + hex(32) + " " + hex(31),
    "sha256:" + hex(63) + "０",
    "sha256:" + hex(63) + "٠",
    "sha256_" + hex(64),
    "sha2560:" + hex(63),
    "sha1:" + hex(64),
    "sha256:" + hex(40),
    "sha256:" + hex(128),
    "md5:" + hex(64),
    "sha256:" + hex(30) + "F" + hex(33)
  ]
  for (const [a, n] of algorithms) {
    out.push(
      `${a}:${hex(n)}`,
      `${a}:${"0123456789abcdef".repeat(8).slice(0, n)}`,
      `${a}:${hex(n - 1)}`,
      `${a}:${hex(n + 1)}`,
      `${a}:${hex(n, "A")}`,
      `${a}:${hex(n, "0")}`,
      `${a}:${hex(n, "9")}`,
      `${a}:${hex(n, "f")}`,
      `${a}:${hex(n, "g")}`,
      `${a}:${hex(n - 1)}/`,
      `${a}:${hex(n - 1)}:`,
      `${a}:${hex(n - 1)}\``,
      `${a}:${hex(n - 1)}g`,
      `${a}:${hex(n - 1)}é`,
      `${a}:${hex(n - 2)}é`,
      `${a}${hex(n + 1)}`,
      `${a}${hex(n)}`,
      `x${a}:${hex(n - 1)}`,
      `x${a}:${hex(n)}`,
      `${a}:${hex(n)}:`,
      `${a.toUpperCase()}:${hex(n)}`
    )
  }
  return out
}

/**
 * `checksum`: `algorithm:hex`, one of five algorithms, lowercase hex digits, the algorithm's
 * count of them. The fast form: the prefix picks the algorithm, the length in bytes is the
 * prefix's plus the digits' (a byte each once the rest is known to be hex digits), and the rest
 * is hex digits by an expression without counted repetitions.
 */
export const checksum: DomainCheck = {
  domain: "checksum",
  constraint: "checksum_check",
  original: (value) => `${value} ~ '^(${algorithms.map(([a, n]) => `${a}:[0-9a-f]{${n}}`).join("|")})$'`,
  fast: (value) =>
    `case ${
      algorithms.map(([a, n]) =>
        `when ${value} like '${a}:%' then octet_length(${value}) = ${a.length + 1 + n} and substr(${value}, ${
          a.length + 2
        }) ~ '^[0-9a-f]*$'`
      ).join(" ")
    } else ${value} is null end`,
  probes: checksumProbes()
}

const pathProbes = (): Array<string | null> => {
  const out: Array<string | null> = [null, "", " ", "a", "a b", "a/b", "a/b/c.fits", "eou-1/prime-cam/scan-0001.fits"]
  // empty, `.` and `..` segments at the start, the end, in the middle and alone
  for (const segment of ["", ".", "..", "...", ".a", "a.", "..a", "a..", "..."]) {
    out.push(segment, `${segment}/b`, `a/${segment}`, `a/${segment}/b`, `${segment}/`, `/${segment}`)
  }
  out.push("/", "//", "///", "a//", "//a", "./", "../", "./.", "../..", "a/./.", "a/.././b", "a\n./b", "a/.\n/b", "a/\n/b")
  // a drive letter: every letter and the characters beside the letters' ranges
  for (const c of ["A", "Z", "a", "z", "@", "[", "`", "{", "0", "9", ":", "/", ".", "É", "é", "ß", "Ａ"]) {
    out.push(`${c}:/x`, `${c}:/`, `${c}:`, `${c}:x`, `${c}/x`)
  }
  out.push("aa:/x", "x/C:/y", "C::/x", " C:/x", "C:\\x")
  // backslashes, and the 1024-byte bound in single- and multi-byte characters
  out.push("\\", "a\\b", "a/b\\", "\\\\server/x")
  out.push("a".repeat(1024), "a".repeat(1025), "a".repeat(1023) + "é", "é".repeat(512), "é".repeat(513), "a".repeat(1022) + "é")
  out.push(`${"a/".repeat(511)}b`, `${"a/".repeat(512)}`, `${"ab/".repeat(341)}a`)
  return out
}

/**
 * `relative_path`: not empty, at most 1024 bytes, no drive letter (`C:/`), no backslash, no
 * empty, `.` or `..` segment. The fast form finds such a segment as `//`, `/./` or `/../` in the
 * path with a slash put before and after it, and a drive letter by the code point of the first
 * character (a comparison of text would follow the collation's order, not the letters' range).
 */
export const relativePath: DomainCheck = {
  domain: "relative_path",
  constraint: "relative_path_check",
  original: (value) =>
    `${value} <> '' and octet_length(${value}) <= 1024 and ${value} !~ '^[A-Za-z]:/' and position(E'\\\\' in ${value}) = 0 and ${value} !~ '(^|/)\\.{0,2}(/|$)'`,
  fast: (value) => {
    const framed = `'/' || ${value} || '/'`
    return `${value} <> '' and octet_length(${value}) <= 1024` +
      ` and not (substr(${value}, 2, 2) = ':/' and (ascii(${value}) between 65 and 90 or ascii(${value}) between 97 and 122))` +
      ` and strpos(${value}, E'\\\\') = 0` +
      ` and strpos(${framed}, '//') = 0 and strpos(${framed}, '/./') = 0 and strpos(${framed}, '/../') = 0`
  },
  probes: pathProbes()
}

/** The domains whose checks migration 0028 made fast. */
export const all: ReadonlyArray<DomainCheck> = [checksum, relativePath]

/**
 * One statement that compares both forms on `values` (by default every probe of every domain)
 * in the database itself (its regular expressions, encoding and collation): the rows where they
 * disagree, none when they agree.
 */
export const disagreements = (
  values: ReadonlyArray<readonly [DomainCheck, ReadonlyArray<string | null>]> = all.map((d) => [d, d.probes])
): { readonly sql: string; readonly params: [Array<string>, Array<string | null>] } => {
  const names: Array<string> = []
  const texts: Array<string | null> = []
  for (const [d, vs] of values) {
    for (const v of vs) {
      names.push(d.domain)
      texts.push(v)
    }
  }
  // a domain's check passes unless it is false (a null passes): compare that, per form
  const arms = all.map((d) => `when '${d.domain}' then ((${d.original("p.v")}) is not false) <> ((${d.fast("p.v")}) is not false)`)
    .join(" ")
  return {
    sql: `select p.d as domain, p.v as value from unnest($1::text[], $2::text[]) as p(d, v) where case p.d ${arms} end`,
    params: [names, texts]
  }
}
