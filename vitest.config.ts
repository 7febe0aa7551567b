import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // Three workers on a two-core machine: most files wait on real processes and servers
    // (CLI runs, Redis, the served simulator), not on the CPU; 7 min -> 3.4 min here.
    maxWorkers: 3,
    minWorkers: 1,
    globalSetup: ["test/setup/servers.ts", "test/setup/cli.ts"],
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    exclude: ["test/**/*.deno.test.ts", "test/**/*.bun.test.ts"]
  }
})
