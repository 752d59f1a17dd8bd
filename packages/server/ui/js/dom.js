// @ts-check
/**
 * Building the page from data without markup strings: every value from the API becomes a text
 * node or an attribute value, never HTML, so a file name such as `<img onerror=...>` is shown as
 * the characters it is. Nothing in the UI uses innerHTML.
 */

/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Record<string, string | number | boolean | null | undefined | ((event: any) => void)>} Props */

/**
 * Makes an element: `props` become attributes (or listeners for `on…` functions), children become
 * nodes, strings and numbers text nodes; null, undefined and false are skipped.
 * @param {string} tag
 * @param {Props | null} [props]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export const h = (tag, props, ...children) => {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue
    if (typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value)
    else if (value === true) el.setAttribute(key, "")
    else el.setAttribute(key, String(value))
  }
  append(el, children)
  return el
}

/**
 * Appends children (nested arrays flattened) to a node.
 * @param {Node} parent
 * @param {Array<Child | Child[]>} children
 */
export const append = (parent, children) => {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    parent.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child)
  }
}

/**
 * Replaces everything in a node.
 * @param {Node} parent
 * @param {...(Child | Child[])} children
 */
export const replace = (parent, ...children) => {
  while (parent.firstChild) parent.removeChild(parent.firstChild)
  append(parent, children)
}

/**
 * A status badge: the word, coloured by how it reads to an operator.
 * @param {string | null | undefined} status
 */
export const badge = (status) => {
  const s = String(status ?? "-")
  const tone = /^(completed|ARCHIVED|PRESENT|STAGED|ok|archived|healthy|packaged)$/i.test(s)
    ? "ok"
    : /^(failed|FAILED|DELETION_FAILED|corrupt|missing|unhealthy|down)$/i.test(s)
    ? "bad"
    : /^(in_progress|TRANSFERRING|scheduled|moving|degraded|DELETION_IN_PROGRESS|DELETION_SCHEDULED)$/i.test(s)
    ? "info"
    : /^(pending|WAITING|waiting|filed|paused|disabled)$/i.test(s)
    ? "warn"
    : "idle"
  return h("span", { class: `badge ${tone}` }, s)
}

/**
 * @template T
 * @typedef {{ header: string, cell: (row: T) => Child | Child[], numeric?: boolean }} Column
 */

/**
 * A table of rows with a caption, or a line saying there is nothing when there are no rows.
 * @template T
 * @param {string} caption
 * @param {Array<Column<T>>} columns
 * @param {ReadonlyArray<T>} rows
 * @param {string} [empty]
 */
export const table = (caption, columns, rows, empty = "Nothing here.") =>
  h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      h("caption", null, caption),
      h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.header)))),
      h(
        "tbody",
        null,
        rows.length === 0
          ? h("tr", null, h("td", { colspan: columns.length, class: "empty" }, empty))
          : rows.map((r) => h("tr", null, columns.map((c) => h("td", { class: c.numeric ? "num" : null }, c.cell(r)))))
      )
    )
  )

/**
 * A definition list of facts about one thing.
 * @param {Array<[string, Child | Child[]]>} facts
 */
export const facts = (facts) => h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]))

/**
 * A link inside the UI.
 * @param {string} hash the route, e.g. `#/observations/…`
 * @param {Child} text
 */
export const link = (hash, text) => h("a", { href: hash }, text)
