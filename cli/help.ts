/**
 * The CLI's help, global options and shell completion, over @effect/cli's command tree.
 *
 * @effect/cli 0.77 prints a long, always-coloured help (a type sentence and "This setting is
 * optional." under every flag) and recognises its built-in options (`--help`, `--version`,
 * `--log-level`, `--completions`, `--wizard`) only before a command's own options. Here the
 * help is rendered from the same tree, one line a flag, with examples, the environment and
 * the exit codes; the built-ins are moved next to the command's name, so they work anywhere;
 * and bash completion is fixed for a program name with a hyphen (0.77 writes the root state
 * as `mde-live-response` but matches its subcommands on `mde__live__response`, so no
 * subcommand's flags ever completed).
 *
 * The tree is read through @effect/cli's descriptor objects (`Standard`, `Subcommands`, and
 * the option combinators); test/cli.habits.test.ts renders it, so a change of shape in a new
 * @effect/cli shows there.
 */
import { type Command, HelpDoc } from "@effect/cli"
import { stripColor } from "./format.ts"

/** The name every example and usage line uses: the installed bin. */
export const BIN = "mde-live-response"

/** One flag of a command. */
export interface Flag {
  readonly name: string
  readonly aliases: ReadonlyArray<string>
  /** `<id>`, `<n>`, `json|text`; empty for a boolean flag. */
  readonly value: string
  readonly description: string
  readonly optional: boolean
  readonly repeated: boolean
}

/** A command of the tree, its flags and subcommands. */
export interface CommandInfo {
  readonly name: string
  /** The first paragraph of the description (the command lists show it). */
  readonly summary: string
  /** Its paragraphs, one a line. */
  readonly description: string
  readonly flags: ReadonlyArray<Flag>
  readonly children: ReadonlyArray<CommandInfo>
}

// The descriptor objects are @effect/cli's internals: typed here as far as this file reads them.
interface Node {
  readonly _tag: string
  readonly [key: string]: unknown
}

/** A HelpDoc's paragraphs as plain text, each on one line. */
const paragraphs = (doc: unknown): Array<string> =>
  doc === undefined ? [] : stripColor(HelpDoc.toAnsiText(doc as HelpDoc.HelpDoc)).split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, " ").trim())
    .filter((p) => p !== "")

const text = (doc: unknown): string => paragraphs(doc).join(" ")

/** Placeholders that say more than the value's type. */
const PLACEHOLDERS: Readonly<Record<string, string>> = {
  action: "<id>",
  machine: "<id>",
  script: "<name>",
  args: "<args>",
  getfile: "<path>",
  machines: "<file|->",
  query: "<filter>"
}

const valueOf = (name: string, primitive: Node): string => {
  switch (primitive._tag) {
    case "Bool":
      return ""
    case "Choice":
      return (primitive.alternatives as ReadonlyArray<readonly [string, unknown]>).map(([n]) => n).join("|")
    case "Integer":
      return PLACEHOLDERS[name] ?? (name === "interval" ? "<seconds>" : "<n>")
    case "Path":
      return primitive.pathType === "directory" ? "<dir>" : primitive.pathType === "file" ? "<file>" : "<path>"
    default:
      return PLACEHOLDERS[name] ?? (name === "interval" || name.endsWith("timeout") || name === "deadline"
        ? "<duration>"
        : "<text>")
  }
}

const flagsOf = (options: Node, optional: boolean, repeated: boolean): Array<Flag> => {
  switch (options._tag) {
    case "Single":
      return [{
        name: options.name as string,
        aliases: options.aliases as ReadonlyArray<string>,
        value: valueOf(options.name as string, options.primitiveType as Node),
        description: text(options.description),
        optional: optional || (options.primitiveType as Node)._tag === "Bool",
        repeated
      }]
    case "Both":
    case "OrElse":
      return [
        ...flagsOf(options.left as Node, optional || options._tag === "OrElse", repeated),
        ...flagsOf(options.right as Node, optional || options._tag === "OrElse", repeated)
      ]
    case "WithDefault":
      return flagsOf(options.options as Node, true, repeated)
    case "Map":
    case "WithFallback":
      return flagsOf(options.options as Node, optional || options._tag === "WithFallback", repeated)
    case "Variadic":
      return flagsOf(options.argumentOption as Node, optional || (options.min as { _tag: string })._tag === "None", true)
    case "KeyValueMap":
      return flagsOf(options.argumentOption as Node, optional, true)
    default:
      return []
  }
}

const infoOf = (node: Node): CommandInfo => {
  switch (node._tag) {
    case "Map":
      return infoOf(node.command as Node)
    case "Subcommands": {
      const parent = infoOf(node.parent as Node)
      return { ...parent, children: (node.children as ReadonlyArray<Node>).map(infoOf) }
    }
    default:
      return {
        name: node.name as string,
        summary: paragraphs(node.description)[0] ?? "",
        description: paragraphs(node.description).join("\n"),
        flags: node.options === undefined ? [] : flagsOf(node.options as Node, false, false),
        children: []
      }
  }
}

/** The command tree of `command`: names, descriptions, flags. */
export const describe = (command: Command.Command<string, never, unknown, unknown>): CommandInfo =>
  infoOf(command.descriptor as unknown as Node)

// ---------------------------------------------------------------------------
// Global options anywhere
// ---------------------------------------------------------------------------

/** @effect/cli's built-in options that take a value. */
const GLOBAL_VALUED = new Set(["--log-level", "--completions"])
/** @effect/cli's built-in flags. */
const GLOBAL_FLAGS = new Set(["--help", "-h", "--version", "--wizard"])

/** The command line, sorted out. */
export interface Prepared {
  /** The command's path below the root (`["campaign", "start"]`), as far as it was given. */
  readonly path: ReadonlyArray<string>
  readonly help: boolean
  /** `--version` was given (anywhere a built-in may be). */
  readonly version: boolean
  readonly completions: string | undefined
  /** The last `--format`'s value, if any (whichever command it was given to). */
  readonly format: string | undefined
  /** `--format` given to a command that has no such flag, taken out of `args`. */
  readonly consumedFormat: boolean
  /** What @effect/cli parses: the path, then the built-ins, then everything else in order. */
  readonly args: ReadonlyArray<string>
}

const splitEquals = (token: string): readonly [string, string | undefined] => {
  const eq = token.indexOf("=")
  return token.startsWith("--") && eq > 2 ? [token.slice(0, eq), token.slice(eq + 1)] : [token, undefined]
}

/**
 * Moves the built-in options (`--help`, `--version`, `--log-level <l>`, `--completions <s>`,
 * `--wizard`) from wherever they were written to right after the command's name, where
 * @effect/cli looks for them; a value of one of the command's own flags is never taken for
 * one (`--args --help` passes `--help` to the script). After `--`, nothing is moved.
 */
export const prepare = (root: CommandInfo, args: ReadonlyArray<string>): Prepared => {
  const path: Array<string> = []
  const globals: Array<string> = []
  const rest: Array<string> = []
  let node = root
  let help = false
  let version = false
  let completions: string | undefined
  let format: string | undefined
  let consumedFormat = false
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!
    if (token === "--") {
      rest.push(...args.slice(i))
      break
    }
    const [name, inline] = splitEquals(token)
    if (GLOBAL_FLAGS.has(name) && inline === undefined) {
      if (name === "--help" || name === "-h") help = true
      else globals.push(name)
      if (name === "--version") version = true
      continue
    }
    if (GLOBAL_VALUED.has(name)) {
      const value = inline ?? args[++i]
      if (name === "--completions") completions = value ?? ""
      else globals.push(name, ...(value === undefined ? [] : [value]))
      continue
    }
    const child = rest.length === 0 ? node.children.find((c) => c.name === token) : undefined
    if (child !== undefined) {
      path.push(token)
      node = child
      continue
    }
    const own = node.flags.find((f) => `--${f.name}` === name || f.aliases.some((a) => `-${a}` === name || `--${a}` === name))
    if (name === "--format") {
      format = inline ?? args[i + 1]
      if (own === undefined) {
        consumedFormat = true
        if (inline === undefined) i++
        continue
      }
    }
    rest.push(token)
    if (own !== undefined && own.value !== "" && inline === undefined && i + 1 < args.length) rest.push(args[++i]!)
  }
  // `--format` written before the command's name goes to the command, when it has one.
  if (consumedFormat && format !== undefined && node.flags.some((f) => f.name === "format")) {
    rest.unshift("--format", format)
    consumedFormat = false
  }
  // A group alone (`campaign`, or nothing at all) asks what is in it.
  const group = node.children.length > 0 && rest.length === 0 && globals.length === 0 && completions === undefined
  return { path, help: help || group, version, completions, format, consumedFormat, args: [...path, ...globals, ...rest] }
}

// ---------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------

/** Examples by command path ("" for the root's), without the bin's name. */
export const EXAMPLES: Readonly<Record<string, ReadonlyArray<string>>> = {
  "": [
    "demo",
    "transcript --simulate --action 5e1d0000-0000-4000-8000-000000000001",
    "run --machine <machine id> --script collect.ps1 --getfile 'C:\\logs\\app.log' --out results",
    "batch < requests.jsonl > results.jsonl",
    "campaign start --machines machines.txt --script collect.ps1 --out campaign-1"
  ],
  transcript: [
    "transcript --simulate --action 5e1d0000-0000-4000-8000-000000000001",
    "transcript --action <id> --index 1 --format json | jq -r .output"
  ],
  link: ["link --action <id> --index 0", "curl -sS \"$(mde-live-response link --action <id>)\" -o result.bin"],
  download: [
    "download --simulate --action 5e1d0000-0000-4000-8000-000000000003 --out dump.zip.gz",
    "download --action <id> --index 1 --out - | gunzip | less"
  ],
  batch: ["batch --concurrency 20 < requests.jsonl > results.jsonl", "echo '{\"action\": \"<id>\"}' | mde-live-response batch"],
  run: [
    "run --machine <machine id> --script collect.ps1 --args '-Days 3'",
    "run --machine <machine id> --script collect.ps1 --getfile 'C:\\logs\\app.log' --out results --format json"
  ],
  "campaign resume": ["campaign resume --out campaign-1"],
  "campaign start": [
    "campaign start --machines machines.txt --script collect.ps1 --out campaign-1",
    "campaign start --query \"machineTags/any(t: t eq 'prod')\" --script collect.ps1 --getfile 'C:\\logs\\app.log' --out campaign-2 --max-sessions 20",
    "campaign start --store postgres://mde@db/mde --results /shared/campaigns --machines fleet.txt --script collect.ps1 --detach"
  ],
  "campaign status": [
    "campaign status --out campaign-1",
    "campaign status --out campaign-1 --format json | jq .succeeded",
    "campaign status --store postgres://mde@db/mde --campaign cmp-0123456789abcdef --format json"
  ],
  "campaign work": [
    "campaign work --store postgres://mde@db/mde --results /shared/campaigns",
    "campaign work --tenants contoso,fabrikam --campaign cmp-0123456789abcdef   # each tenant set by MDE_<NAME>_*"
  ],
  "campaign export": ["campaign export --store postgres://mde@db/mde --campaign cmp-0123456789abcdef --out manifest.jsonl"],
  simulator: ["simulator > sim.env &   # then: . ./sim.env; mde-live-response transcript --action 5e1d0000-0000-4000-8000-000000000001"],
  doctor: ["doctor", "doctor --format json"]
}

/** The environment variables the help lists; README.md's Configuration section has the details. */
export const ENVIRONMENT: ReadonlyArray<readonly [string, string]> = [
  ["AZURE_TENANT_ID", "the tenant; with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, the app registration"],
  ["MDE_TOKEN", "a bearer token to use instead of the app registration"],
  ["MDE_CLOUD", "commercial (default), us, eu, uk, au, swa, ina, aea, gcc, gcc-high, dod; or MDE_API_URL, AZURE_AUTHORITY_HOST, MDE_SCOPE"],
  ["MDE_RATE_LIMITS", "the shared budget, e.g. 100/1m,1500/1h (also MDE_RUN_RATE_LIMITS, MDE_MACHINE_ACTION_RATE_LIMITS)"],
  ["MDE_REDIS_URL", "share the budget between processes through Redis"],
  ["MDE_TIMEOUT", "how long one request may take (e.g. 30s)"],
  ["MDE_DOWNLOAD_HOSTS", "the hosts result links may point to"],
  ["MDE_CAMPAIGN_STORE", "campaigns shared by workers: a PostgreSQL URL (also MDE_CAMPAIGN_RESULTS, MDE_TENANTS, MDE_CLAIM_EXPIRY)"],
  ["NO_COLOR", "any value: no colour (there is none either when the output is not a terminal)"]
]


/** What the help shows besides the tree. */
export interface HelpExtras {
  readonly version: string
  /** The exit codes (`EXIT_CODES`); the help groups them by code. */
  readonly exitCodes: Readonly<Record<string, number>>
  /** Examples by command path (`"campaign start"`), each a command line without the bin's name. */
  readonly examples: Readonly<Record<string, ReadonlyArray<string>>>
  /** The environment variables, with what each one is. */
  readonly environment: ReadonlyArray<readonly [name: string, what: string]>
}

const table = (rows: ReadonlyArray<readonly [string, string]>, indent = "  "): Array<string> => {
  const width = Math.min(28, Math.max(0, ...rows.map(([left]) => left.length)))
  return rows.map(([left, right]) =>
    right === "" ? `${indent}${left}` : left.length > width
      ? `${indent}${left}\n${indent}${" ".repeat(width + 2)}${right}`
      : `${indent}${left.padEnd(width + 2)}${right}`
  )
}

const flagText = (f: Flag): string => `--${f.name}${f.value === "" ? "" : ` ${f.value}`}`

/** `mde-live-response transcript --action <id> [--index <n>] …`. */
export const usageLine = (path: ReadonlyArray<string>, info: CommandInfo): string => {
  const flags = info.flags.map((f) => {
    const shown = `${flagText(f)}${f.repeated ? "…" : ""}`
    return f.optional ? `[${shown}]` : shown
  })
  return [BIN, ...path, ...(info.children.length > 0 ? [`${info.children.map((c) => c.name).join("|")}`] : []), ...flags]
    .join(" ")
}

const commandRows = (prefix: string, info: CommandInfo): Array<readonly [string, string]> =>
  info.children.flatMap((c) =>
    c.children.length > 0
      ? [[`${prefix}${c.name} ${c.children.map((g) => g.name).join("|")}`, c.summary] as const]
      : [[`${prefix}${c.name}`, c.summary] as const]
  )

const GLOBAL_ROWS: ReadonlyArray<readonly [string, string]> = [
  ["--format json|text", "json: results as JSON, and an error as one JSON line on stderr"],
  ["--log-level <level>", "all|trace|debug|info|warning|error|fatal|none, logged on stderr"],
  ["--completions bash|zsh|fish", "print a completion script (e.g. source <(mde-live-response --completions bash))"],
  ["-h, --help", "this help; after a command, that command's"],
  ["--version", "the version"]
]

const exitRows = (codes: Readonly<Record<string, number>>): Array<readonly [string, string]> => {
  const byCode = new Map<number, Array<string>>([[0, ["success"]]])
  for (const [tag, code] of Object.entries(codes)) byCode.set(code, [...(byCode.get(code) ?? []), tag])
  byCode.set(141, ["stdout closed by its reader (batch: 12), nothing printed"])
  byCode.set(130, [...(byCode.get(130) ?? []), "SIGINT (Ctrl-C)"])
  byCode.set(143, ["SIGTERM"])
  return [...byCode.entries()].sort(([a], [b]) => a - b).map(([code, tags]) => [String(code), tags.join(", ")] as const)
}

/** The root's help: what it is, the commands, examples, global options, environment, exit codes. */
const rootHelp = (root: CommandInfo, extras: HelpExtras): Array<string> => [
  `${BIN} ${extras.version}: ${root.summary}`,
  "",
  `Usage: ${BIN} <command> [options]   (${BIN} <command> --help for its options)`,
  "",
  "Commands:",
  ...table(commandRows("", root)),
  "",
  "Examples:",
  ...(extras.examples[""] ?? []).map((e) => `  ${BIN} ${e}`),
  "",
  "Options of every command:",
  ...table(GLOBAL_ROWS),
  "",
  "Environment (or --simulate: an embedded simulator, no configuration):",
  ...table(extras.environment),
  "",
  "Exit codes:",
  ...table(exitRows(extras.exitCodes))
]

/** A command's help: usage, what it does, its flags one a line, examples. */
const commandHelp = (path: ReadonlyArray<string>, info: CommandInfo, extras: HelpExtras): Array<string> => {
  const examples = extras.examples[path.join(" ")] ?? []
  return [
    `${BIN} ${path.join(" ")}: ${info.summary}`,
    "",
    `Usage: ${usageLine(path, info)}`,
    ...(info.description.includes("\n") ? ["", ...info.description.split("\n").slice(1)] : []),
    ...(info.children.length > 0 ? ["", "Commands:", ...table(commandRows(`${path.join(" ")} `, info))] : []),
    ...(info.flags.length > 0
      ? ["", "Options:", ...table(info.flags.map((f) => [flagText(f), f.description] as const))]
      : []),
    ...(examples.length > 0 ? ["", "Examples:", ...examples.map((e) => `  ${BIN} ${e}`)] : []),
    "",
    `Also --format json|text, --log-level <level>, --help; environment and exit codes: ${BIN} --help`
  ]
}

/** The help text for `path` (as far as it names commands), ending with a newline. */
export const render = (root: CommandInfo, path: ReadonlyArray<string>, extras: HelpExtras): string => {
  let info = root
  for (const name of path) info = info.children.find((c) => c.name === name) ?? info
  const lines = path.length === 0 ? rootHelp(root, extras) : commandHelp(path, info, extras)
  return `${lines.join("\n")}\n`
}

// ---------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------

/**
 * @effect/cli's bash script, mended: the root state is named as its subcommand cases expect
 * (`mde__live__response`, not `mde-live-response`), and a nested subcommand's case matches the
 * state its parent sets (`mde__live__response__campaign,start)`, not `…,campaign,start)`).
 */
export const fixBashCompletion = (script: string, name: string = BIN): string => {
  const state = name.replace(/-/g, "__")
  return script
    .replace(`cmd="${name}"`, `cmd="${state}"`)
    .replace(/^(\s*case "\$\{cmd\}" in\n\s*)[^\s)]+\)/m, `$1${state})`)
    .replace(/^(\s*)([A-Za-z0-9_]+(?:,[A-Za-z0-9_-]+){2,})\)$/gm, (_, indent: string, label: string) => {
      const parts = label.split(",")
      return `${indent}${parts.slice(0, -1).join("__")},${parts[parts.length - 1]})`
    })
}
