// Bundles the CLI (cli/main.ts and everything it imports, Effect included) into one
// ES module, dist/cli/mde-live-response.js: the package's `bin`. One file loads in a
// fraction of the time Node needs to resolve and evaluate hundreds of modules, and the
// installed CLI cannot pick up a different Effect than the one it was tested with.
// ioredis stays outside (an optional peer, imported only when MDE_REDIS_URL is set).
// Usage: node scripts/build-cli.mjs [outfile]
import { build } from "esbuild"
import { chmodSync } from "node:fs"

const outfile = process.argv[2] ?? "dist/cli/mde-live-response.js"

await build({
  entryPoints: ["cli/main.ts"],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  external: ["ioredis"],
  // Bundled CommonJS dependencies call require() for Node's built-ins.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __mdeRequire } from \"node:module\";\nconst require = __mdeRequire(import.meta.url);"
  },
  logLevel: "warning"
})
chmodSync(outfile, 0o755)
