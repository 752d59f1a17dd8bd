/**
 * Splits a migration's SQL text into statements, as PostgreSQL would read them: semicolons inside
 * quotes, quoted identifiers, dollar-quoted bodies (`$$ ... $$`, `$fn$ ... $fn$`) and comments
 * do not end a statement. Comments before a statement stay with it, so a marker comment
 * (`-- ccat:contract ...`) belongs to the statement it precedes.
 */

/** The statements of `text`, each trimmed, comments kept; empty ones (a trailing `;`) dropped. */
export const split = (text: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  let start = 0
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i]!
    if (c === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i)
      i = end === -1 ? n : end + 1
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2)
      i = end === -1 ? n : end + 2
    } else if (c === "'" || c === '"') {
      i++
      while (i < n) {
        if (text[i] === c && text[i + 1] === c) i += 2
        else if (text[i] === c) break
        else i++
      }
      i++
    } else if (c === "$") {
      const tag = /^\$[A-Za-z_]*\$/.exec(text.slice(i))
      if (tag === null) {
        i++
      } else {
        const end = text.indexOf(tag[0], i + tag[0].length)
        i = end === -1 ? n : end + tag[0].length
      }
    } else if (c === ";") {
      out.push(text.slice(start, i))
      start = i + 1
      i++
    } else {
      i++
    }
  }
  out.push(text.slice(start))
  return out.map((s) => s.trim()).filter((s) => stripComments(s).trim() !== "")
}

/** The statement without its comments and with its whitespace collapsed, for matching. */
export const stripComments = (statement: string): string => {
  let out = ""
  let i = 0
  const n = statement.length
  while (i < n) {
    const c = statement[i]!
    if (c === "-" && statement[i + 1] === "-") {
      const end = statement.indexOf("\n", i)
      i = end === -1 ? n : end + 1
      out += " "
    } else if (c === "/" && statement[i + 1] === "*") {
      const end = statement.indexOf("*/", i + 2)
      i = end === -1 ? n : end + 2
      out += " "
    } else if (c === "'" || c === '"') {
      const from = i
      i++
      while (i < n) {
        if (statement[i] === c && statement[i + 1] === c) i += 2
        else if (statement[i] === c) break
        else i++
      }
      i++
      out += statement.slice(from, i)
    } else if (c === "$" && /^\$[A-Za-z_]*\$/.test(statement.slice(i))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(statement.slice(i))![0]
      const end = statement.indexOf(tag, i + tag.length)
      const to = end === -1 ? n : end + tag.length
      // a body's own comments go too: collapsed onto one line they would swallow the code after them
      out += `${tag} ${stripComments(statement.slice(i + tag.length, end === -1 ? n : end))} ${tag}`
      i = to
    } else {
      out += c
      i++
    }
  }
  return out.replace(/\s+/g, " ").trim()
}

/** The `-- ccat:WORD reason` marker comments of a statement, by word. */
export const markers = (statement: string): ReadonlyMap<string, string> => {
  const found = new Map<string, string>()
  for (const m of statement.matchAll(/--\s*ccat:([a-z-]+)\b[ \t]*(.*)$/gm)) found.set(m[1]!, m[2]!.trim())
  return found
}

/**
 * Splits `text` at commas outside parentheses and quotes: the actions of one ALTER TABLE, the
 * columns of a definition.
 */
export const splitTopLevel = (text: string): ReadonlyArray<string> => {
  const parts: Array<string> = []
  let depth = 0
  let quote: string | undefined
  let from = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') quote = c
    else if (c === "(") depth++
    else if (c === ")") depth--
    else if (c === "," && depth === 0) {
      parts.push(text.slice(from, i).trim())
      from = i + 1
    }
  }
  parts.push(text.slice(from).trim())
  return parts.filter((p) => p !== "")
}
