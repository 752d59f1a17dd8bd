/**
 * Strict parsers of the two metric formats, written from their specifications so a test can
 * tell whether what the server emits would be accepted by Prometheus and by InfluxDB: the text
 * exposition format 0.0.4 and the line protocol. They throw on the first deviation.
 */

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const floatText = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/

/** One parsed Prometheus sample. */
export interface PromSample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** A parsed exposition: families by name with their type, and every sample. */
export interface Exposition {
  readonly types: Map<string, string>
  readonly samples: ReadonlyArray<PromSample>
}

const familyOf = (name: string, types: Map<string, string>): string | undefined => {
  if (types.has(name)) return name
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length)
      const t = types.get(base)
      if (t === "histogram" || (t === "summary" && suffix !== "_bucket")) return base
    }
  }
  return undefined
}

const parseLabels = (text: string, line: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf("=", i)
    if (eq < 0) throw new Error(`label without '=': ${line}`)
    const name = text.slice(i, eq)
    if (!labelName.test(name)) throw new Error(`bad label name "${name}": ${line}`)
    if (text[eq + 1] !== '"') throw new Error(`label value not quoted: ${line}`)
    let j = eq + 2
    let value = ""
    for (;;) {
      if (j >= text.length) throw new Error(`unterminated label value: ${line}`)
      const c = text[j]!
      if (c === "\\") {
        const n = text[j + 1]
        if (n === "\\") value += "\\"
        else if (n === '"') value += '"'
        else if (n === "n") value += "\n"
        else throw new Error(`bad escape \\${n}: ${line}`)
        j += 2
      } else if (c === '"') break
      else if (c === "\n") throw new Error(`raw newline in label value: ${line}`)
      else {
        value += c
        j++
      }
    }
    if (name in labels) throw new Error(`label ${name} twice: ${line}`)
    labels[name] = value
    j++
    if (j < text.length) {
      if (text[j] !== ",") throw new Error(`expected ',' after a label: ${line}`)
      j++
    }
    i = j
  }
  return labels
}

/**
 * Parses Prometheus text format 0.0.4 strictly: every sample belongs to a family whose HELP and
 * TYPE came before it, families are contiguous and declared once, names and labels are valid,
 * no series repeats, and histograms are cumulative with a `+Inf` bucket equal to `_count`.
 */
export const parsePrometheus = (text: string): Exposition => {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline")
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples: Array<PromSample> = []
  const series = new Set<string>()
  const finished = new Set<string>()
  let current: string | undefined
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (m === null) continue // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!metricName.test(name)) throw new Error(`bad metric name in ${kind}: ${line}`)
      if (finished.has(name) || (current !== undefined && current !== name && (types.has(name) || helps.has(name)))) {
        throw new Error(`family ${name} declared again: ${line}`)
      }
      if (current !== undefined && current !== name) finished.add(current)
      current = name
      if (kind === "HELP") {
        if (helps.has(name)) throw new Error(`second HELP for ${name}`)
        if (rest.replace(/\\[\\n]/g, "").includes("\\")) throw new Error(`bad escape in HELP: ${line}`)
        helps.add(name)
      } else {
        if (types.has(name)) throw new Error(`second TYPE for ${name}`)
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad TYPE: ${line}`)
        if ([...samples].some((s) => familyOf(s.name, new Map([[name, rest]])) === name)) throw new Error(`TYPE after samples: ${line}`)
        types.set(name, rest)
      }
      continue
    }
    if (line === "") throw new Error("empty line in the exposition")
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string]
    if (!metricName.test(name)) throw new Error(`bad metric name: ${line}`)
    if (!floatText.test(valueText)) throw new Error(`bad value: ${line}`)
    const family = familyOf(name, types)
    if (family === undefined || !helps.has(family)) throw new Error(`sample before its HELP and TYPE: ${line}`)
    if (family !== current) throw new Error(`sample of ${family} outside its family's block: ${line}`)
    const labels = labelText === undefined || labelText === "" ? {} : parseLabels(labelText, line)
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",")}}`
    if (series.has(key)) throw new Error(`duplicate series ${key}`)
    series.add(key)
    const value = valueText === "+Inf" ? Infinity : valueText === "-Inf" ? -Infinity : Number(valueText)
    samples.push({ name, labels, value })
  }
  for (const [name, type] of types) {
    if (!helps.has(name)) throw new Error(`family ${name} has a TYPE but no HELP`)
    if (type !== "histogram") continue
    const groups = new Map<string, Array<PromSample>>()
    for (const s of samples.filter((s) => s.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels
      if (le === undefined) throw new Error(`${name}_bucket without le`)
      const k = JSON.stringify(Object.entries(rest).sort())
      groups.set(k, [...(groups.get(k) ?? []), s])
    }
    for (const [k, buckets] of groups) {
      const sorted = [...buckets].sort((a, b) =>
        (a.labels.le === "+Inf" ? Infinity : Number(a.labels.le)) - (b.labels.le === "+Inf" ? Infinity : Number(b.labels.le))
      )
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i]!.value < sorted[i - 1]!.value) throw new Error(`${name}: buckets not cumulative at ${k}`)
      }
      const inf = sorted.at(-1)!
      if (inf.labels.le !== "+Inf") throw new Error(`${name}: no +Inf bucket for ${k}`)
      const rest = Object.fromEntries(JSON.parse(k) as Array<[string, string]>)
      const count = samples.find((s) =>
        s.name === `${name}_count` && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(rest).sort())
      )
      if (count === undefined || count.value !== inf.value) throw new Error(`${name}: _count differs from the +Inf bucket for ${k}`)
    }
  }
  return { types, samples }
}

/** The value of the one sample with this name whose labels include `labels`; undefined if none. */
export const valueOf = (e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined => {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`)
  return found[0]?.value
}

/** The sum over the samples with this name whose labels include `labels`. */
export const sumOf = (e: Exposition, name: string, labels: Record<string, string> = {}): number =>
  e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0)

/** One parsed line of line protocol. */
export interface Line {
  readonly measurement: string
  readonly tags: Record<string, string>
  readonly fields: Record<string, number | string | boolean>
  readonly timestamp: bigint | undefined
}

/** Reads an escaped token up to one of `stops` (unescaped); returns it and the index of the stop. */
const token = (s: string, from: number, stops: string, escapable: string, what: string): [string, number] => {
  let out = ""
  let i = from
  while (i < s.length && !stops.includes(s[i]!)) {
    if (s[i] === "\\" && i + 1 < s.length && escapable.includes(s[i + 1]!)) {
      out += s[i + 1]
      i += 2
    } else {
      if (s[i] === "\n" || s[i] === "\r") throw new Error(`newline inside ${what}`)
      out += s[i]
      i++
    }
  }
  return [out, i]
}

/**
 * Parses one line of InfluxDB line protocol strictly: `measurement(,tag=value)* field=value(,…)*
 * [timestamp]`, with the escapes of each part (commas and spaces in a measurement; commas, equals
 * signs and spaces in tag keys, tag values and field keys), non-empty tags, and typed field values
 * (float, `i` integer, `u` unsigned, boolean, quoted string).
 */
export const parseLine = (line: string): Line => {
  let [measurement, i] = token(line, 0, ", ", ", \\", "measurement")
  if (measurement === "" || measurement.startsWith("#")) throw new Error(`no measurement: ${line}`)
  const tags: Record<string, string> = {}
  while (line[i] === ",") {
    const [key, eq] = token(line, i + 1, "=, ", ",= \\", "tag key")
    if (line[eq] !== "=" || key === "") throw new Error(`bad tag key at ${i}: ${line}`)
    const [value, end] = token(line, eq + 1, ", ", ",= \\", "tag value")
    if (value === "") throw new Error(`empty tag value for ${key}: ${line}`)
    if (key in tags) throw new Error(`tag ${key} twice: ${line}`)
    tags[key] = value
    i = end
  }
  if (line[i] !== " ") throw new Error(`expected a space before the fields: ${line}`)
  i++
  const fields: Record<string, number | string | boolean> = {}
  for (;;) {
    const [key, eq] = token(line, i, "=, ", ",= \\", "field key")
    if (line[eq] !== "=" || key === "") throw new Error(`bad field key at ${i}: ${line}`)
    let j = eq + 1
    let value: number | string | boolean
    if (line[j] === '"') {
      let str = ""
      j++
      while (line[j] !== '"') {
        if (j >= line.length) throw new Error(`unterminated string field: ${line}`)
        if (line[j] === "\\" && (line[j + 1] === '"' || line[j + 1] === "\\")) {
          str += line[j + 1]
          j += 2
        } else str += line[j++]
      }
      value = str
      j++
    } else {
      const m = /^[^, ]+/.exec(line.slice(j))
      if (m === null) throw new Error(`empty field value for ${key}: ${line}`)
      const raw = m[0]
      j += raw.length
      if (/^-?\d+i$/.test(raw)) value = Number(raw.slice(0, -1))
      else if (/^\d+u$/.test(raw)) value = Number(raw.slice(0, -1))
      else if (/^(t|T|true|True|TRUE)$/.test(raw)) value = true
      else if (/^(f|F|false|False|FALSE)$/.test(raw)) value = false
      else if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) value = Number(raw)
      else throw new Error(`bad field value ${raw}: ${line}`)
    }
    if (key in fields) throw new Error(`field ${key} twice: ${line}`)
    fields[key] = value
    if (line[j] === ",") {
      i = j + 1
      continue
    }
    i = j
    break
  }
  let timestamp: bigint | undefined
  if (i < line.length) {
    if (line[i] !== " " || !/^-?\d+$/.test(line.slice(i + 1))) throw new Error(`bad timestamp: ${line}`)
    timestamp = BigInt(line.slice(i + 1))
  }
  if (Object.keys(fields).length === 0) throw new Error(`no fields: ${line}`)
  return { measurement, tags, fields, timestamp }
}

/** Parses a body of line protocol (lines separated by `\n`, a trailing newline allowed). */
export const parseLines = (body: string): Array<Line> =>
  body.split("\n").filter((l, i, all) => !(l === "" && i === all.length - 1)).map((l) => {
    if (l === "") throw new Error("empty line in the body")
    return parseLine(l)
  })
