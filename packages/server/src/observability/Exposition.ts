/**
 * The two wire formats of the metrics: Prometheus text exposition format 0.0.4 (scraped at
 * `/metrics`) and InfluxDB line protocol (pushed by `InfluxPush`). Both render the same
 * families, so a Prometheus dashboard and an Influx one show the same figures.
 */

/** What kind of series a family is: the Prometheus TYPE. */
export type FamilyType = "gauge" | "counter" | "histogram" | "summary"

/** One sample: a full series name (a histogram's `_bucket`, `_sum`, `_count`), its labels and value. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** A metric family: one name with its HELP, TYPE and samples, rendered together. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: FamilyType
  readonly samples: ReadonlyArray<Sample>
}

/** The content type Prometheus expects for the text format. */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

const validName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const validLabel = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** A name made valid for Prometheus: other characters become `_`. */
export const sanitizeName = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return validName.test(s) ? s : `_${s}`
}

/** A label name made valid for Prometheus (no `:`; `__` prefix is reserved). */
export const sanitizeLabel = (name: string): string => {
  const s = name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^__+/, "_")
  return validLabel.test(s) ? s : `_${s}`
}

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const escapeLabelValue = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

/** A sample value as Prometheus writes it (Go's float syntax, with `+Inf`, `-Inf`, `NaN`). */
export const formatValue = (v: number): string => Number.isNaN(v) ? "NaN" : v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : String(v)

const labelText = (labels: Readonly<Record<string, string>>) => {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ""
  return `{${entries.map(([k, v]) => `${sanitizeLabel(k)}="${escapeLabelValue(v)}"`).join(",")}}`
}

/**
 * Families as Prometheus text 0.0.4: HELP and TYPE before each family's samples, families of
 * the same name merged (the format forbids repeating a family), duplicate series dropped.
 */
export const prometheus = (families: ReadonlyArray<Family>): string => {
  const merged = new Map<string, Family>()
  for (const f of families) {
    const name = sanitizeName(f.name)
    const prior = merged.get(name)
    merged.set(name, prior === undefined ? { ...f, name } : { ...prior, samples: [...prior.samples, ...f.samples] })
  }
  const out: Array<string> = []
  for (const f of merged.values()) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`)
    const seen = new Set<string>()
    for (const s of f.samples) {
      const line = `${sanitizeName(s.name)}${labelText(s.labels)}`
      if (seen.has(line)) continue
      seen.add(line)
      out.push(`${line} ${formatValue(s.value)}`)
    }
  }
  return out.join("\n") + "\n"
}

const escapeMeasurement = (s: string) => s.replace(/\\/g, "\\\\").replace(/[, ]/g, (c) => `\\${c}`)
const escapeKey = (s: string) => s.replace(/\\/g, "\\\\").replace(/[,= ]/g, (c) => `\\${c}`)
// InfluxDB unescapes only `\,`, `\=` and `\ ` in a tag value and keeps any other backslash as it
// is (`\\` stays two), so a backslash is written bare; one right before those characters or at
// the end would escape the wrong thing and cannot be written, so it is left out. No newlines.
const escapeTagValue = (s: string) => s.replace(/[\r\n]+/g, " ").replace(/\\+(?=[,= ]|$)/g, "").replace(/[,= ]/g, (c) => `\\${c}`)

// InfluxDB refuses these tag keys (1.x `time`; 2.x also its own columns), dropping the point.
const reservedTagKeys = new Set(["time", "_field", "_measurement"])
const tagKey = (label: string) => {
  const k = sanitizeLabel(label)
  return reservedTagKeys.has(k) ? `${k}_` : k
}

/** The suffix a histogram or summary sample adds to its family's name, as an Influx field name. */
const fieldOf = (family: Family, sample: Sample): string => {
  const suffix = sample.name.startsWith(family.name) ? sample.name.slice(family.name.length) : ""
  if (suffix === "_bucket") return `le_${sample.labels.le ?? ""}`
  if (suffix === "_sum") return "sum"
  if (suffix === "_count") return "count"
  if (family.type === "summary" && sample.labels.quantile !== undefined) return `q_${sample.labels.quantile}`
  return "value"
}

/**
 * Families as InfluxDB line protocol at one timestamp (nanoseconds): the measurement is the
 * family's name, labels become tags (empty ones are left out, Influx refuses them), and a
 * gauge or counter has the field `value`; a histogram's buckets become fields `le_<bound>` with
 * `sum` and `count` on one line per label set. Values are floats; NaN and infinities are not
 * representable and are left out. `tags` are added to every line (a sample's own label wins).
 * A label InfluxDB reserves as a tag key (`time`, `_field`, `_measurement`) gets a `_` suffix.
 */
export const lineProtocol = (
  families: ReadonlyArray<Family>,
  timestampNs: bigint,
  tags: Readonly<Record<string, string>> = {}
): string => {
  const lines: Array<string> = []
  for (const f of families) {
    const rows = new Map<string, Map<string, number>>()
    for (const s of f.samples) {
      if (!Number.isFinite(s.value)) continue
      const tagText = Object.entries({ ...tags, ...s.labels })
        .filter(([k, v]) => v !== "" && k !== "le" && !(f.type === "summary" && k === "quantile"))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `,${escapeKey(tagKey(k))}=${escapeTagValue(v)}`)
        .filter((t) => !t.endsWith("="))
        .join("")
      const key = `${escapeMeasurement(sanitizeName(f.name))}${tagText}`
      const fields = rows.get(key) ?? new Map<string, number>()
      fields.set(fieldOf(f, s), s.value)
      rows.set(key, fields)
    }
    for (const [key, fields] of rows) {
      const body = [...fields].map(([k, v]) => `${escapeKey(k)}=${formatValue(v)}`).join(",")
      lines.push(`${key} ${body} ${timestampNs}`)
    }
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n"
}
