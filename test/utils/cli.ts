/**
 * The arguments to `node` that start the CLI in a test: the bundle test/setup/cli.ts
 * built, or cli/main.ts through tsx (`MDE_TEST_CLI=tsx`, or a file run without the
 * global setup).
 */
const bundle = process.env["MDE_TEST_CLI"]

/** `spawn(process.execPath, [...CLI, "transcript", …])`. */
export const CLI: ReadonlyArray<string> = bundle !== undefined && bundle !== "tsx" && bundle !== ""
  ? [bundle]
  : ["--import", "tsx", "cli/main.ts"]
