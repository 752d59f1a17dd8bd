/**
 * The ADQL 2.1 grammar this service understands, for peggy: one SELECT over one table, with TOP,
 * DISTINCT, WHERE, GROUP BY, HAVING, ORDER BY and OFFSET; value expressions, function calls,
 * comparisons, BETWEEN, LIKE/ILIKE, IN lists, IS NULL and the boolean operators. Its actions
 * build the AST of `Adql.ts`. What ADQL has and this service does not (JOIN, UNION, subqueries)
 * does not parse; `Adql.parse` names it in the error.
 */

/** The grammar text (peggy syntax); keywords are case-insensitive, `--` starts a comment. */
export const grammar = String.raw`
{{
  function fold(head, tail, type) {
    return tail.reduce((left, t) => ({ type, op: t[1], left, right: t[3] }), head)
  }
  function foldBool(head, tail, type) {
    return tail.reduce((left, t) => ({ type, left, right: t[3] }), head)
  }
}}

Query
  = _ SELECT _ quantifier:(q:(DISTINCT / ALL) _ { return q })? top:(TOP _ n:UInt _ { return n })?
    items:SelectList _ FROM _ from:TableRef
    where:(_ WHERE _ c:Condition { return c })?
    groupBy:(_ GROUP _ BY _ l:ExprList { return l })?
    having:(_ HAVING _ c:Condition { return c })?
    orderBy:(_ ORDER _ BY _ l:OrderList { return l })?
    offset:(_ OFFSET _ n:UInt { return n })?
    _ (";" _)? End
    { return { distinct: quantifier === "distinct", top, items, from, where, groupBy, having, orderBy, offset } }

End = !.

SelectList
  = "*" { return [{ type: "star" }] }
  / head:SelectItem tail:(_ "," _ i:SelectItem { return i })* { return [head, ...tail] }

SelectItem
  = q:Identifier _ "." _ "*" { return { type: "star", qualifier: q } }
  / expr:Expr alias:(_ (AS _)? a:Identifier { return a })? { return { type: "item", expr, alias } }

TableRef
  = name:QualifiedName alias:(_ (AS _)? a:Identifier { return a })? { return { name, alias } }

QualifiedName
  = head:Identifier tail:(_ "." _ i:Identifier { return i })* { return [head, ...tail] }

ExprList
  = head:Expr tail:(_ "," _ e:Expr { return e })* { return [head, ...tail] }

OrderList
  = head:OrderItem tail:(_ "," _ o:OrderItem { return o })* { return [head, ...tail] }

OrderItem
  = expr:Expr dir:(_ d:(ASC / DESC) { return d })? { return { expr, desc: dir === "desc" } }

Condition
  = head:AndCondition tail:(_ OR _ AndCondition)* { return foldBool(head, tail, "or") }

AndCondition
  = head:NotCondition tail:(_ AND _ NotCondition)* { return foldBool(head, tail, "and") }

NotCondition
  = NOT _ c:NotCondition { return { type: "not", cond: c } }
  / Predicate

Predicate
  = "(" _ c:Condition _ ")" { return c }
  / left:Expr _ op:CompOp _ right:Expr { return { type: "cmp", op, left, right } }
  / expr:Expr _ not:(NOT _)? BETWEEN _ low:Expr _ AND _ high:Expr { return { type: "between", not: not !== null, expr, low, high } }
  / expr:Expr _ not:(NOT _)? k:(LIKE / ILIKE) _ pattern:Expr { return { type: "like", not: not !== null, ci: k === "ilike", expr, pattern } }
  / expr:Expr _ not:(NOT _)? IN _ "(" _ list:ExprList _ ")" { return { type: "in", not: not !== null, expr, list } }
  / expr:Expr _ IS _ not:(NOT _)? NULL { return { type: "isnull", not: not !== null, expr } }

CompOp = "<>" / "!=" { return "<>" } / "<=" / ">=" / "=" / "<" / ">"

Expr
  = head:Term tail:(_ ("+" / "-" / "||") _ Term)* { return fold(head, tail, "binary") }

Term
  = head:Factor tail:(_ ("*" / "/") _ Factor)* { return fold(head, tail, "binary") }

Factor
  = op:("-" / "+") _ expr:Factor { return { type: "unary", op, expr } }
  / Primary

Primary
  = Number
  / String
  / NULL { return { type: "null" } }
  / "(" _ e:Expr _ ")" { return e }
  / Count
  / FunctionCall
  / parts:QualifiedName { return { type: "col", parts } }

Count
  = "count"i _ "(" _ "*" _ ")" { return { type: "func", name: "COUNT", args: [], star: true, distinct: false } }

FunctionCall
  = name:RegularName _ "(" _ distinct:(d:(DISTINCT / ALL) _ { return d === "distinct" })? args:ExprList? _ ")"
    { return { type: "func", name: name.toUpperCase(), args: args ?? [], star: false, distinct: distinct === true } }

Number
  = text:$((Digits ("." Digits?)? / "." Digits) ([eE] [+-]? Digits)?)
    { return { type: "num", text, integer: /^[0-9]+$/.test(text) } }

Digits = [0-9]+

UInt = d:$Digits { return Number(d) }

String
  = "'" chars:$([^'] / "''")* "'" { return { type: "str", value: chars.replaceAll("''", "'") } }

Identifier
  = name:RegularName { return { name: name.toLowerCase(), delimited: false } }
  / '"' chars:$([^"] / '""')+ '"' { return { name: chars.replaceAll('""', '"'), delimited: true } }

RegularName = !Reserved name:$([A-Za-z] [A-Za-z0-9_]*) { return name }

IdentChar = [A-Za-z0-9_]

Reserved
  = (SELECT / FROM / WHERE / AND / OR / NOT / AS / TOP / DISTINCT / ALL / ORDER / GROUP / BY / HAVING / ASC / DESC
  / BETWEEN / LIKE / ILIKE / IN / IS / NULL / OFFSET / JOIN / UNION / INTERSECT / EXCEPT / ON / USING / INNER
  / LEFT / RIGHT / FULL / OUTER / NATURAL / CROSS / WITH)

SELECT = "select"i !IdentChar { return "select" }
FROM = "from"i !IdentChar
WHERE = "where"i !IdentChar
AND = "and"i !IdentChar
OR = "or"i !IdentChar
NOT = "not"i !IdentChar
AS = "as"i !IdentChar
TOP = "top"i !IdentChar
DISTINCT = "distinct"i !IdentChar { return "distinct" }
ALL = "all"i !IdentChar { return "all" }
ORDER = "order"i !IdentChar
GROUP = "group"i !IdentChar
BY = "by"i !IdentChar
HAVING = "having"i !IdentChar
ASC = "asc"i !IdentChar { return "asc" }
DESC = "desc"i !IdentChar { return "desc" }
BETWEEN = "between"i !IdentChar
LIKE = "like"i !IdentChar { return "like" }
ILIKE = "ilike"i !IdentChar { return "ilike" }
IN = "in"i !IdentChar
IS = "is"i !IdentChar
NULL = "null"i !IdentChar
OFFSET = "offset"i !IdentChar
JOIN = "join"i !IdentChar
UNION = "union"i !IdentChar
INTERSECT = "intersect"i !IdentChar
EXCEPT = "except"i !IdentChar
ON = "on"i !IdentChar
USING = "using"i !IdentChar
INNER = "inner"i !IdentChar
LEFT = "left"i !IdentChar
RIGHT = "right"i !IdentChar
FULL = "full"i !IdentChar
OUTER = "outer"i !IdentChar
NATURAL = "natural"i !IdentChar
CROSS = "cross"i !IdentChar
WITH = "with"i !IdentChar

_ "whitespace" = ([ \t\r\n] / "--" [^\n]*)*
`
