/**
 * Rolling-window arithmetic shared by the quota benchmark and the tests that
 * check a run against a quota.
 */
export interface Limit {
  readonly limit: number
  readonly millis: number
}

/** The zero-latency schedule: call k starts as soon as every limit allows it. */
export const theoreticalMillis = (n: number, limits: ReadonlyArray<Limit>): number => {
  const starts: Array<number> = []
  for (let k = 0; k < n; k++) {
    let t = 0
    for (const l of limits) if (k >= l.limit) t = Math.max(t, starts[k - l.limit]! + l.millis)
    starts.push(t)
  }
  return starts[n - 1] ?? 0
}

/** The most entries of `times` in any half-open window of `millis`. */
export const maxInWindow = (times: ReadonlyArray<number>, millis: number): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= millis) start++
    best = Math.max(best, end - start + 1)
  }
  return best
}

