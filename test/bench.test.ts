/**
 * The benchmarks' own arithmetic (the benchmarks themselves run in `npm run
 * bench`, and as a quick smoke run at the end of `npm test`).
 */
import { describe, expect, it } from "@effect/vitest"
import { svgChart } from "../bench/chart.ts"
import { maxInWindow, theoreticalMillis } from "../bench/windows.ts"

describe("bench arithmetic", () => {
  it("the theoretical minimum starts every call the moment every limit allows it", () => {
    // 100 per 2 s and 1500 per 30 s: 15 bursts by 28 s, then the 30-s window frees 100 every 2 s.
    expect(theoreticalMillis(3000, [{ limit: 100, millis: 2_000 }, { limit: 1500, millis: 30_000 }])).toBe(58_000)
    expect(theoreticalMillis(300, [{ limit: 50, millis: 1_000 }, { limit: 200, millis: 4_000 }])).toBe(5_000)
    // The longer window dominates once it is full: 10 per 1 s, but only 20 per 10 s.
    expect(theoreticalMillis(41, [{ limit: 10, millis: 1_000 }, { limit: 20, millis: 10_000 }])).toBe(20_000)
    expect(theoreticalMillis(1, [{ limit: 1, millis: 1_000 }])).toBe(0)
  })

  it("counts the most calls in any half-open window", () => {
    expect(maxInWindow([0, 999, 1000, 1001], 1000)).toBe(3)
    expect(maxInWindow([0, 1000, 2000], 1000)).toBe(1)
    expect(maxInWindow([5, 1, 3, 2], 10)).toBe(4)
    expect(maxInWindow([], 10)).toBe(0)
  })

  it("draws one line per run and the quota line, with the labels escaped", () => {
    const svg = svgChart({
      title: "calls <per> second",
      series: [{ label: "a & b", times: [0, 10, 1500] }, { label: "c", times: [0] }],
      binMillis: 1000,
      quotaPerSecond: 2
    })
    expect(svg.startsWith("<svg")).toBe(true)
    expect(svg.match(/<polyline/g)).toHaveLength(2)
    expect(svg).toContain("stroke-dasharray")
    expect(svg).toContain("a &amp; b")
    expect(svg).toContain("calls &lt;per&gt; second")
    // Series a: 2 calls in the first 1-s bin (2 per second), 1 in the second.
    expect(svg).not.toContain("NaN")
  })
})
