/**
 * Loaded with Effect 4, the npm entry fails at once with one line naming the
 * versions it needs (src/internal/effectVersion.ts, dist/entry/*.js).
 *
 * The entry tests run real Node processes on the built package in a temporary
 * node_modules (a fake Effect 4 beside it), so they wait in real time.
 */
import { describe, expect, it } from "@effect/vitest"
import * as EffectModule from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { effectProblem } from "../src/internal/effectVersion.ts"

describe("effectProblem", () => {
  it("accepts the effect this project runs on", () => {
    expect(effectProblem(EffectModule as unknown as Record<string, unknown>)).toBeUndefined()
  })

  it("names the versions needed when Context.GenericTag or 3.x-only modules are missing", () => {
    const four = { ...EffectModule, Context: { Service: () => undefined }, Either: undefined, ParseResult: undefined }
    const problem = effectProblem(four as unknown as Record<string, unknown>)
    expect(problem).toContain("effect 3.x (>= 3.22.4)")
    expect(problem).toContain("@effect/platform 0.97.x")
    expect(problem).toContain("npm install effect@3 @effect/platform@0.97")
    expect(problem).not.toContain("\n")
  })
})

/** A project folder whose node_modules holds the built package and the given `effect`. */
const project = (effect: "real" | "four") => {
  const dir = mkdtempSync(join(tmpdir(), "mde-effect-"))
  const modules = join(dir, "node_modules")
  const own = join(modules, "mde-live-response")
  mkdirSync(own, { recursive: true })
  cpSync("dist", join(own, "dist"), { recursive: true })
  cpSync("package.json", join(own, "package.json"))
  symlinkSync(resolve("node_modules/@effect"), join(modules, "@effect"))
  if (effect === "real") {
    symlinkSync(resolve("node_modules/effect"), join(modules, "effect"))
  } else {
    // Effect 4's root exports Context (with no GenericTag) and no Either or ParseResult.
    const fake = join(modules, "effect")
    mkdirSync(fake)
    writeFileSync(
      join(fake, "package.json"),
      JSON.stringify({ name: "effect", version: "4.0.0-beta.98", type: "module", exports: { ".": "./index.js" } })
    )
    writeFileSync(join(fake, "index.js"), "export const Context = { Service: () => undefined }\nexport const Effect = {}\n")
  }
  return dir
}

const load = (dir: string) =>
  spawnSync(process.execPath, ["--input-type=module", "-e", "await import('mde-live-response'); console.log('loaded')"], {
    cwd: dir,
    encoding: "utf8"
  })

describe("the npm entry point", () => {
  if (!existsSync("dist/entry/mod.js")) execFileSync("npm", ["run", "--silent", "build"], { stdio: "inherit" })

  it("loads with Effect 3", () => {
    const dir = project("real")
    try {
      const result = load(dir)
      expect(result.stdout.trim()).toBe("loaded")
      expect(result.status).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)

  it("fails at once under Effect 4 with the one line naming the versions, and no stack", () => {
    const dir = project("four")
    try {
      const result = load(dir)
      expect(result.status).not.toBe(0)
      expect(result.stdout).toBe("")
      expect(result.stderr).toContain("mde-live-response needs effect 3.x (>= 3.22.4)")
      expect(result.stderr).not.toContain("GenericTag is not a function")
      expect(result.stderr).not.toMatch(/^\s+at /m)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
