// The CLI uses the library as its users do: through the package's two entry points.
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import ts from "typescript"

const importsOf = (file: string): Array<string> =>
  [...readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)\b[^"']*?from\s+["']([^"']+)["']/gm)].map((m) => m[1]!)

const sources = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : name.endsWith(".ts") ? [path] : []
  })

/** Every function in `file` with its length in lines (a function's lines include its inner functions'). */
const functionLengths = (file: string): Array<{ readonly where: string; readonly lines: number }> => {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
  const found: Array<{ readonly where: string; readonly lines: number }> = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const first = source.getLineAndCharacterOfPosition(node.getStart()).line
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line
      found.push({ where: `${file}:${first + 1}`, lines: last - first + 1 })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

const MAX_FUNCTION_LINES = 120

describe("layout", () => {
  it(`no function in src/ is longer than ${MAX_FUNCTION_LINES} lines`, () => {
    const all = sources("src").flatMap(functionLengths)
    // The measure sees functions at all: the library has hundreds.
    expect(all.length).toBeGreaterThan(200)
    expect(all.filter((f) => f.lines > MAX_FUNCTION_LINES)).toEqual([])
  })


  it("cli/ imports the library only through mod.ts, testing.ts and postgres.ts", () => {
    const files = readdirSync("cli").filter((f) => f.endsWith(".ts")).map((f) => join("cli", f))
    expect(files.length).toBeGreaterThan(3)
    const reaching = files.flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith("../") && spec !== "../mod.ts" && spec !== "../testing.ts" && spec !== "../postgres.ts")
        .map((spec) => `${file}: ${spec}`)
    )
    expect(reaching).toEqual([])
    // The check sees imports at all (a broken pattern would pass everything).
    expect(files.flatMap(importsOf)).toContain("../mod.ts")
  })
})
