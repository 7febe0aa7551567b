// `npm pack --dry-run`, checked: the tarball holds the built entry points, the bundled `bin`, and one .js and .d.ts per
// source module, and nothing but dist/, README.md, LICENSE and package.json.
// Run by `npm run check:publish`; prints the file count, exits 1 with the reasons otherwise.
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const npm = process.platform === "win32" ? "npm.cmd" : "npm"
// With --json the prepack build's output goes to stderr, so stdout is the JSON alone.
const report = JSON.parse(execFileSync(npm, ["pack", "--dry-run", "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }))
const files = new Set(report[0].files.map((file) => file.path))

const sources = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [join(dir, entry.name)] : []
  )

const pkg = JSON.parse(readFileSync("package.json", "utf8"))
const expected = [
  "package.json",
  "README.md",
  "LICENSE",
  ...Object.values(pkg.exports).flatMap((entry) => Object.values(entry)).map((path) => path.replace(/^\.\//, "")),
  ...Object.values(pkg.bin ?? {}),
  ...["mod.ts", "testing.ts", "postgres.ts", ...sources("src")].flatMap((source) => {
    const base = `dist/${source.replace(/\\/g, "/").replace(/\.ts$/, "")}`
    return [`${base}.js`, `${base}.d.ts`]
  })
]
const problems = [
  ...expected.filter((path) => !files.has(path)).map((path) => `missing from the package: ${path}`),
  ...[...files]
    .filter((path) => !["package.json", "README.md", "LICENSE"].includes(path) && !path.startsWith("dist/"))
    .map((path) => `not meant to be published: ${path}`),
  ...[...files].filter((path) => /\.test\.|(^|\/)test\//.test(path)).map((path) => `a test file in the package: ${path}`)
]
if (problems.length > 0) {
  console.error(`npm pack --dry-run: ${problems.length} problem(s)\n  ${problems.join("\n  ")}`)
  process.exit(1)
}
console.log(`npm pack --dry-run: ${report[0].filename}, ${files.size} files, ${report[0].size} bytes packed, dist/ complete`)
