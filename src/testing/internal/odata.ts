/**
 * The small OData `$filter` subset the Defender list endpoints take: `eq ne gt ge lt le`,
 * `and or not`, parentheses, `field in ('a','b')`, `field/any(t: t eq 'x')`, string literals
 * (`''` escapes a quote), numbers, `true`/`false`/`null` and unquoted datetimes. Parsing never
 * throws: anything it does not understand is an error message (the endpoint's 400).
 *
 * @internal
 */

/** @internal A literal: a string, number, boolean, null, or a datetime as epoch milliseconds. */
export type Literal = string | number | boolean | null | { readonly datetime: number }

/** @internal A comparison operator. */
export type Operator = "eq" | "ne" | "gt" | "ge" | "lt" | "le"

/** @internal What a comparison reads: a field of the item, or the element a lambda is at. */
export type Operand = { readonly field: string } | { readonly element: true }

/** @internal A parsed filter. */
export type Filter =
  | { readonly _tag: "And" | "Or"; readonly left: Filter; readonly right: Filter }
  | { readonly _tag: "Not"; readonly filter: Filter }
  | { readonly _tag: "Compare"; readonly operand: Operand; readonly op: Operator; readonly value: Literal }
  | { readonly _tag: "In"; readonly operand: Operand; readonly values: ReadonlyArray<Literal> }
  | { readonly _tag: "Any"; readonly field: string; readonly body: Filter }

type Token =
  | { readonly kind: "word"; readonly text: string }
  | { readonly kind: "literal"; readonly value: Literal }
  | { readonly kind: "punct"; readonly text: "(" | ")" | "," | ":" | "/" }

const MAX_LENGTH = 200_000
const MAX_DEPTH = 32
const OPERATORS: ReadonlySet<string> = new Set(["eq", "ne", "gt", "ge", "lt", "le"])
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})/
const NUMBER = /^-?\d+(?:\.\d+)?/
const WORD = /^[A-Za-z_][A-Za-z0-9_]*/

/** Reads a string literal starting at `start` (a quote); `''` is one quote. */
const stringAt = (text: string, start: number): { readonly value: string; readonly end: number } | undefined => {
  let value = ""
  let i = start + 1
  while (i < text.length) {
    if (text[i] === "'") {
      if (text[i + 1] !== "'") return { value, end: i + 1 }
      value += "'"
      i += 2
    } else {
      value += text[i]
      i += 1
    }
  }
  return undefined
}

/** Splits a filter into tokens, or answers what it could not read. */
const tokenize = (text: string): Array<Token> | string => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (/\s/.test(c)) {
      i += 1
      continue
    }
    if ("(),:/".includes(c)) {
      tokens.push({ kind: "punct", text: c as "(" })
      i += 1
      continue
    }
    if (c === "'") {
      const read = stringAt(text, i)
      if (read === undefined) return `unterminated string literal at position ${i}`
      tokens.push({ kind: "literal", value: read.value })
      i = read.end
      continue
    }
    const rest = text.slice(i, i + 64)
    const datetime = DATETIME.exec(rest)
    if (datetime !== null && !Number.isNaN(Date.parse(datetime[0]))) {
      tokens.push({ kind: "literal", value: { datetime: Date.parse(datetime[0]) } })
      i += datetime[0].length
      continue
    }
    const number = NUMBER.exec(rest) ?? undefined
    const word = number === undefined ? WORD.exec(rest) ?? undefined : undefined
    const match = number ?? word
    if (match === undefined) return `unexpected character '${c}' at position ${i}`
    tokens.push(number !== undefined ? { kind: "literal", value: Number(number[0]) } : { kind: "word", text: match[0] })
    i += match[0].length
  }
  return tokens
}

/** A failure while parsing, thrown only inside `parseFilter` and caught there. */
class Invalid {
  constructor(readonly message: string) {}
}

/** A recursive-descent parser over the tokens, for the fields in `fields`. */
const parser = (tokens: ReadonlyArray<Token>, fields: ReadonlySet<string>) => {
  let at = 0
  let depth = 0
  let element: string | undefined
  const peek = (): Token | undefined => tokens[at]
  const fail = (why: string): never => {
    throw new Invalid(why)
  }
  const isWord = (t: Token | undefined, text: string): boolean => t?.kind === "word" && t.text === text
  const punct = (text: string): void => {
    const t = tokens[at++]
    if (t?.kind !== "punct" || t.text !== text) fail(`expected '${text}'`)
  }
  const literal = (): Literal => {
    const t = tokens[at++]
    if (t?.kind === "literal") return t.value
    if (t?.kind === "word" && (t.text === "true" || t.text === "false")) return t.text === "true"
    if (t?.kind === "word" && t.text === "null") return null
    return fail("expected a literal")
  }
  const operand = (): Operand => {
    const t = tokens[at++]
    if (t?.kind !== "word") return fail("expected a property name")
    if (element !== undefined && t.text === element) return { element: true }
    if (!fields.has(t.text)) return fail(`unknown property '${t.text}'`)
    return { field: t.text }
  }
  const lambda = (field: string): Filter => {
    punct("/")
    if (!isWord(tokens[at++], "any")) fail("only the 'any' lambda is supported")
    punct("(")
    const variable = tokens[at++]
    if (variable?.kind !== "word" || element !== undefined) return fail("expected a lambda variable")
    punct(":")
    element = variable.text
    const body = or()
    element = undefined
    punct(")")
    return { _tag: "Any", field, body }
  }
  const comparison = (): Filter => {
    const next = tokens[at + 1]
    const first = peek()
    if (first?.kind === "word" && next?.kind === "punct" && next.text === "/" && element === undefined) {
      if (!fields.has(first.text)) fail(`unknown property '${first.text}'`)
      at += 1
      return lambda(first.text)
    }
    const read = operand()
    const op = tokens[at++]
    if (op?.kind === "word" && op.text === "in") {
      punct("(")
      const values = [literal()]
      while (peek()?.kind === "punct" && (peek() as { text: string }).text === ",") {
        at += 1
        values.push(literal())
      }
      punct(")")
      return { _tag: "In", operand: read, values }
    }
    if (op?.kind !== "word" || !OPERATORS.has(op.text)) return fail("expected an operator (eq, ne, gt, ge, lt, le, in)")
    return { _tag: "Compare", operand: read, op: op.text as Operator, value: literal() }
  }
  const primary = (): Filter => {
    if (++depth > MAX_DEPTH) fail("the filter is nested too deeply")
    let result: Filter
    const t = peek()
    if (t?.kind === "punct" && t.text === "(") {
      at += 1
      result = or()
      punct(")")
    } else if (isWord(t, "not")) {
      at += 1
      result = { _tag: "Not", filter: primary() }
    } else {
      result = comparison()
    }
    depth -= 1
    return result
  }
  /** One precedence level of a binary operator: `next ("word" next)*`, to the left. */
  const level = (tag: "And" | "Or", word: string, next: () => Filter) => (): Filter => {
    let left = next()
    while (isWord(peek(), word)) {
      at += 1
      left = { _tag: tag, left, right: next() }
    }
    return left
  }
  const and = level("And", "and", primary)
  const or: () => Filter = level("Or", "or", and)
  return { or, done: () => at >= tokens.length }
}

/**
 * @internal Parses a `$filter` over the given properties: the filter, or a message saying what
 * is wrong with it. Never throws.
 */
export const parseFilter = (
  text: string,
  fields: ReadonlySet<string>
): { readonly filter: Filter } | { readonly error: string } => {
  if (text.length > MAX_LENGTH) return { error: "the filter is too long" }
  const tokens = tokenize(text)
  if (typeof tokens === "string") return { error: tokens }
  if (tokens.length === 0) return { error: "the filter is empty" }
  try {
    const p = parser(tokens, fields)
    const filter = p.or()
    return p.done() ? { filter } : { error: "unexpected text after the filter" }
  } catch (error) {
    if (error instanceof Invalid) return { error: error.message }
    return { error: "the filter could not be read" }
  }
}

const order = (value: unknown, literal: Literal): number | undefined => {
  if (literal === null || typeof literal === "boolean") return undefined
  if (typeof literal === "object") {
    const t = typeof value === "string" ? Date.parse(value) : Number.NaN
    return Number.isNaN(t) ? undefined : Math.sign(t - literal.datetime)
  }
  if (typeof literal === "number") return typeof value === "number" ? Math.sign(value - literal) : undefined
  return typeof value === "string" ? (value < literal ? -1 : value > literal ? 1 : 0) : undefined
}

const equals = (value: unknown, literal: Literal): boolean =>
  literal === null
    ? value === null || value === undefined
    : typeof literal === "boolean"
    ? value === literal
    : order(value, literal) === 0

const compare = (value: unknown, op: Operator, literal: Literal): boolean => {
  if (op === "eq") return equals(value, literal)
  if (op === "ne") return !equals(value, literal)
  const o = order(value, literal)
  if (o === undefined) return false
  return op === "gt" ? o > 0 : op === "ge" ? o >= 0 : op === "lt" ? o < 0 : o <= 0
}

/** @internal Whether `item` (its properties by name) matches the filter. */
export const matches = (filter: Filter, item: Readonly<Record<string, unknown>>, element?: unknown): boolean => {
  const read = (operand: Operand): unknown => ("field" in operand ? item[operand.field] : element)
  switch (filter._tag) {
    case "And":
      return matches(filter.left, item, element) && matches(filter.right, item, element)
    case "Or":
      return matches(filter.left, item, element) || matches(filter.right, item, element)
    case "Not":
      return !matches(filter.filter, item, element)
    case "Compare":
      return compare(read(filter.operand), filter.op, filter.value)
    case "In":
      return filter.values.some((v) => equals(read(filter.operand), v))
    case "Any": {
      const values = item[filter.field]
      return Array.isArray(values) && values.some((v) => matches(filter.body, item, v))
    }
  }
}
