import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    globalSetup: ["test/setup/servers.ts", "test/setup/cli.ts"],
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    exclude: ["test/**/*.deno.test.ts", "test/**/*.bun.test.ts"]
  }
})
