// The CLI uses the library as its users do: through the package's two entry points.
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const importsOf = (file: string): Array<string> =>
  [...readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)\b[^"']*?from\s+["']([^"']+)["']/gm)].map((m) => m[1]!)

describe("layout", () => {
  it("cli/ imports the library only through mod.ts and testing.ts", () => {
    const files = readdirSync("cli").filter((f) => f.endsWith(".ts")).map((f) => join("cli", f))
    expect(files.length).toBeGreaterThan(3)
    const reaching = files.flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith("../") && spec !== "../mod.ts" && spec !== "../testing.ts")
        .map((spec) => `${file}: ${spec}`)
    )
    expect(reaching).toEqual([])
    // The check sees imports at all (a broken pattern would pass everything).
    expect(files.flatMap(importsOf)).toContain("../mod.ts")
  })
})
