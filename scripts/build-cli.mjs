// Bundles the CLI (cli/main.ts and everything it imports, Effect included) into one
// ES module, dist/cli/mde-live-response.js: the package's `bin`. One file loads in a
// fraction of the time Node needs to resolve and evaluate hundreds of modules, and the
// installed CLI cannot pick up a different Effect than the one it was tested with.
// ioredis is inside too (evaluated only when MDE_REDIS_URL is set), so `npx
// mde-live-response` shares a budget on Redis without a second install.
// The bin itself is a three-line launcher beside it that turns on Node's compile cache
// (22.1 and later; a no-op on 20) before importing the bundle, so a second call does not
// compile its megabyte of code again.
// Usage: node scripts/build-cli.mjs [outfile]
import { build } from "esbuild"
import { chmodSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"

const bin = process.argv[2] ?? "dist/cli/mde-live-response.js"
const outfile = join(dirname(bin), `${basename(bin, ".js")}.bundle.js`)

await build({
  entryPoints: ["cli/main.ts"],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  // Bundled CommonJS dependencies call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __mdeRequire } from \"node:module\";\nconst require = __mdeRequire(import.meta.url);"
  },
  logLevel: "warning"
})
writeFileSync(
  bin,
  [
    "#!/usr/bin/env node",
    "// The mde-live-response CLI: Node's compile cache on (where it exists), then the bundle.",
    "import module from \"node:module\"",
    "module.enableCompileCache?.()",
    `await import(\"./${basename(outfile)}\")`,
    ""
  ].join("\n")
)
chmodSync(bin, 0o755)
