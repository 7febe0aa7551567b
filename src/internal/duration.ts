/**
 * The short duration spelling the configuration uses: `500ms`, `30s`, `2m`,
 * `1.5h` (a missing amount means 1 where `amountOptional`, as in `100/m`).
 *
 * @internal
 */
const UNIT_MILLIS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** The duration in milliseconds, or `undefined` when `text` is not in the short spelling. */
export const parseShortDuration = (text: string, amountOptional = false): number | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)\s*$/i.exec(text)
  if (match === null || (match[1] === undefined && !amountOptional)) return undefined
  return Number(match[1] ?? "1") * UNIT_MILLIS[match[2]!.toLowerCase()]!
}
