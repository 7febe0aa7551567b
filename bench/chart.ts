/**
 * A dependency-free SVG line chart: accepted calls per second over time, one
 * step line per run, and the quota's sustained rate as a dashed line.
 */
export interface Series {
  readonly label: string
  /** Milliseconds since the run's first call, one per accepted call. */
  readonly times: ReadonlyArray<number>
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** A "nice" step for about `count` ticks over `max`. */
const niceStep = (max: number, count: number) => {
  const raw = max / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 5, 10]) if (raw <= m * magnitude) return m * magnitude
  return 10 * magnitude
}

export const svgChart = (options: {
  readonly title: string
  readonly series: ReadonlyArray<Series>
  readonly binMillis: number
  readonly quotaPerSecond: number
}): string => {
  const width = 900
  const height = 420
  const margin = { left: 60, right: 20, top: 40, bottom: 110 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const binSeconds = options.binMillis / 1000

  const rates = options.series.map((s) => {
    const bins: Array<number> = []
    for (const t of s.times) {
      const b = Math.floor(t / options.binMillis)
      while (bins.length <= b) bins.push(0)
      bins[b]! += 1
    }
    return bins.map((count) => count / binSeconds)
  })
  const maxSeconds = Math.max(1, ...rates.map((r) => r.length * binSeconds))
  const maxRate = Math.max(options.quotaPerSecond * 1.25, ...rates.flat()) * 1.05
  const x = (seconds: number) => margin.left + (seconds / maxSeconds) * plotW
  const y = (rate: number) => margin.top + plotH - (rate / maxRate) * plotH

  const parts: Array<string> = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14">${escape(options.title)}</text>`
  )
  // Axes and grid.
  const xStep = niceStep(maxSeconds, 10)
  for (let s = 0; s <= maxSeconds + 1e-9; s += xStep) {
    parts.push(
      `<line x1="${x(s)}" y1="${margin.top}" x2="${x(s)}" y2="${margin.top + plotH}" stroke="#eee"/>`,
      `<text x="${x(s)}" y="${margin.top + plotH + 16}" text-anchor="middle">${Number(s.toFixed(3))}</text>`
    )
  }
  const yStep = niceStep(maxRate, 6)
  for (let r = 0; r <= maxRate + 1e-9; r += yStep) {
    parts.push(
      `<line x1="${margin.left}" y1="${y(r)}" x2="${margin.left + plotW}" y2="${y(r)}" stroke="#eee"/>`,
      `<text x="${margin.left - 6}" y="${y(r) + 4}" text-anchor="end">${Number(r.toFixed(3))}</text>`
    )
  }
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}" stroke="black"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="black"/>`,
    `<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 34}" text-anchor="middle">seconds since the first call (${binSeconds} s bins)</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">accepted calls per second</text>`
  )
  // The quota's sustained rate.
  parts.push(
    `<line x1="${margin.left}" y1="${y(options.quotaPerSecond)}" x2="${margin.left + plotW}" y2="${y(options.quotaPerSecond)}" stroke="black" stroke-dasharray="6 4"/>`
  )
  // One step line per series.
  rates.forEach((bins, i) => {
    const points: Array<string> = []
    bins.forEach((rate, b) => {
      points.push(`${x(b * binSeconds).toFixed(1)},${y(rate).toFixed(1)}`, `${x((b + 1) * binSeconds).toFixed(1)},${y(rate).toFixed(1)}`)
    })
    parts.push(
      `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.6" points="${points.join(" ")}"/>`
    )
  })
  // Legend.
  const legend = [
    ...options.series.map((s, i) => ({ label: s.label, color: COLORS[i % COLORS.length]!, dash: "" })),
    { label: `quota, sustained (${Number(options.quotaPerSecond.toFixed(2))} calls/s)`, color: "black", dash: "6 4" }
  ]
  legend.forEach((item, i) => {
    const lx = margin.left + (i % 2) * (plotW / 2)
    const ly = margin.top + plotH + 56 + Math.floor(i / 2) * 18
    parts.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${item.color}" stroke-width="2" ${item.dash === "" ? "" : `stroke-dasharray="${item.dash}"`}/>`,
      `<text x="${lx + 30}" y="${ly}">${escape(item.label)}</text>`
    )
  })
  parts.push("</svg>")
  return parts.join("\n") + "\n"
}
