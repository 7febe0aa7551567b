/**
 * How the CLI writes for people and for programs: `--format json|text`, the one-line error
 * (`error: Tag: message`, or `{"error": {"tag", "message", "exitCode"}}` under `--format json`),
 * and colour — none under `NO_COLOR` (any non-empty value), on a stream that is not a
 * terminal, or on `TERM=dumb`.
 */
import { Options } from "@effect/cli"
import { Console, Effect } from "effect"

/** What a command prints: `text` for people (the default), `json` for programs. */
export type Format = "json" | "text"

/** `--format json|text`, default `text`. */
export const formatOption: Options.Options<Format> = Options.choice("format", ["json", "text"]).pipe(
  Options.withDefault("text" as const),
  Options.withDescription("text for people (default) or json for programs; json also makes an error one JSON line on stderr")
)

/**
 * The shortest poll interval `run --interval` and `campaign start --interval` accept. Get
 * machine action allows 100 calls a minute and 1500 an hour (API-FACTS.md): a faster poll
 * only spends the shared budget the rate limiter then makes every caller wait for.
 */
export const MIN_INTERVAL_SECONDS = 1

/** Whether colour may be written to `stream`: a terminal, no `NO_COLOR`, not `TERM=dumb`. */
export const colorEnabled = (
  stream: { readonly isTTY?: boolean | undefined },
  env: Readonly<Record<string, string | undefined>> = process.env
): boolean =>
  stream.isTTY === true && (env.NO_COLOR ?? "") === "" && env.TERM !== "dumb"

/** Colour and style escapes (SGR, `ESC [ … m`); cursor movement and line clearing stay. */
const SGR = /\u001b\[[0-9;:]*m/g

/** `text` without its colour and style escapes. */
export const stripColor = (text: string): string => text.replace(SGR, "")

/** The one line a failure writes on stderr (with its newline), in `format`. */
export const errorLine = (format: Format, tag: string, message: string, exitCode: number): string => {
  const oneLine = message.replace(/\s+/g, " ").trim()
  return format === "json"
    ? `${JSON.stringify({ error: { tag, message: oneLine, exitCode } })}\n`
    : `error: ${tag}: ${oneLine}\n`
}

/**
 * The console @effect/cli prints its own messages through (usage errors, `--version`, the
 * wizard): colour removed where `colorEnabled` says no, and under `--format json` its error
 * text dropped, because main prints the usage error as one JSON line instead.
 */
export const cliConsole = (format: Format, onError: () => void = () => {}): Effect.Effect<Console.Console> =>
  Effect.map(Effect.console, (base): Console.Console => {
    const render = (args: ReadonlyArray<unknown>, color: boolean) => {
      const text = args.map((a) => (typeof a === "string" ? a : String(a))).join(" ")
      return color ? text : stripColor(text)
    }
    return {
      ...base,
      log: (...args: ReadonlyArray<unknown>) =>
        Effect.sync(() => {
          process.stdout.write(`${render(args, colorEnabled(process.stdout))}\n`)
        }),
      error: (...args: ReadonlyArray<unknown>) =>
        Effect.sync(() => {
          if (format === "json") return
          onError()
          process.stderr.write(`${render(args, colorEnabled(process.stderr))}\n`)
        })
    }
  })
