/**
 * The README and the pages under docs/ as a newcomer follows them: every
 * in-page anchor names a heading of its page, every relative link names a file
 * that exists, and every `mde-live-response <command>` they show is a command
 * the CLI has.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"

const pages = ["README.md", ...readdirSync("docs").filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)]

/** GitHub's heading anchors: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
const slug = (heading: string) =>
  heading.trim().toLowerCase().replace(/[`*]/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-")

const withoutCode = (text: string) => text.replace(/^```[\s\S]*?^```/gm, "")

describe.each(pages)("%s", (page) => {
  const text = readFileSync(page, "utf8")
  const prose = withoutCode(text)
  const links = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!)

  it("links only to headings of its own page and to files that exist", () => {
    const anchors = new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((match) => slug(match[1]!)))
    const broken = links.filter((link) => {
      if (/^[a-z]+:/.test(link)) return false
      const [path, anchor] = link.split("#") as [string, string | undefined]
      if (path === "") return !anchors.has(anchor ?? "")
      return !existsSync(join(dirname(page), path))
    })
    expect(broken).toEqual([])
  })
})

describe("the commands the pages show", () => {
  const main = readFileSync("cli/main.ts", "utf8") + readdirSync("cli").map((f) => readFileSync(join("cli", f), "utf8")).join("\n")
  const known = new Set([...main.matchAll(/Command\s*\.make\(\s*"([a-z-]+)"/g)].map((match) => match[1]!))

  it.each(pages)("%s names only commands the CLI has", (page) => {
    // A command line: at a line's start, after `npx `, a pipe, `$(` or an opening backtick.
    const shown = [...readFileSync(page, "utf8").matchAll(/(?:^|npx |\| |\$\(|`)mde-live-response ([a-z][a-z-]*)/gm)].map((match) =>
      match[1]!
    )
    expect(shown.filter((command) => !known.has(command))).toEqual([])
  })
})
