/**
 * Vitest global setup: the CLI the tests spawn is the bundled `bin` users install
 * (scripts/build-cli.mjs), built here from the current sources into a temporary
 * folder, once per run (about a second). A process then starts in a few hundred
 * milliseconds instead of the ~3.5 s of CPU `node --import tsx cli/main.ts` costs,
 * which the suite pays a hundred times over. `MDE_TEST_CLI=tsx` runs the sources
 * through tsx instead. The path reaches the test workers as `MDE_TEST_CLI`.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { join, resolve } from "node:path"

export default function setup(): (() => void) | undefined {
  if (process.env["MDE_TEST_CLI"] === "tsx") return undefined
  // Inside the checkout, so the bundle finds ioredis (kept outside it) in node_modules.
  mkdirSync("node_modules/.cache", { recursive: true })
  const dir = mkdtempSync(join("node_modules/.cache", "mde-cli-"))
  const bin = join(dir, "mde-live-response.js")
  execFileSync(process.execPath, ["scripts/build-cli.mjs", bin], { stdio: "inherit" })
  process.env["MDE_TEST_CLI"] = resolve(bin)
  return () => rmSync(dir, { recursive: true, force: true })
}
