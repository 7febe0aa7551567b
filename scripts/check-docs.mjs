// The public surface's documentation, checked as users meet it (npm test runs this):
// `deno doc --lint` on both entry points must be clean, and every exported symbol — at the
// top level and inside each module namespace — needs a `@since` and a `@category` tag.
import { execFileSync } from "node:child_process"

const entries = ["mod.ts", "testing.ts", "postgres.ts"]
// deno doc --json of the whole surface is over a megabyte: the default 1 MiB buffer is too small.
const deno = (args) =>
  execFileSync("npx", ["deno", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 * 1024 * 1024 })

try {
  deno(["doc", "--lint", ...entries])
} catch (error) {
  // deno prints every problem; only its report matters here, not its type-resolution warnings.
  const report = String(error.stderr).replace(/\x1b\[[0-9;]*m/g, "")
    .split("\n").filter((line) => !/^Warning|^\s+at /.test(line)).join("\n")
  console.error(report)
  console.error("check-docs: deno doc --lint found problems (above)")
  process.exit(1)
}

const missing = []
const visit = (symbol, path) => {
  for (const declaration of symbol.declarations ?? []) {
    const tags = declaration.jsDoc?.tags ?? []
    if (tags.some((t) => t.kind === "ignore")) continue
    const name = [...path, symbol.name].join(".")
    if (declaration.kind === "namespace") {
      // A module namespace (`export * as X`) is documented by its module; its members need tags.
      for (const element of declaration.def?.elements ?? []) visit(element, [...path, symbol.name])
      continue
    }
    for (const kind of ["since", "category"]) {
      if (!tags.some((t) => t.kind === kind)) missing.push(`${name}: no @${kind}`)
    }
  }
}
const doc = JSON.parse(deno(["doc", "--json", ...entries]))
let count = 0
for (const file of Object.values(doc.nodes)) {
  for (const symbol of file.symbols ?? []) {
    count++
    visit(symbol, [])
  }
}
if (count === 0) {
  console.error("check-docs: deno doc listed no symbol at all")
  process.exit(1)
}
if (missing.length > 0) {
  console.error(missing.join("\n"))
  console.error(`check-docs: ${missing.length} exports lack a tag`)
  process.exit(1)
}
console.log(`check-docs: deno doc --lint clean; every export of ${entries.join(" and ")} has @since and @category`)
