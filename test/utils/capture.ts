/**
 * Captures everything the library emits — every log line (all levels, with its
 * message, cause, annotations and log spans) and every span (name, kind,
 * attributes, events, links, parent, and how it ended: the success value or
 * the failure cause, pretty-printed and serialised) — so tests can assert that
 * no secret ever leaves it.
 */
import { HttpClientResponse } from "@effect/platform"
import { Cause, Exit, FiberRefs, HashMap, Inspectable, Layer, List, Logger, LogLevel, Option, Tracer } from "effect"
import type { Context } from "effect"
import { inspect } from "node:util"

export interface Captured {
  /** One line per log call, everything it carried. */
  readonly logs: Array<string>
  readonly spans: Array<CapturedSpan>
  /** Everything as one string, for `not.toContain` checks. */
  readonly dump: () => string
}

export class CapturedSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string
  readonly traceId: string
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes: Map<string, unknown> = new Map()
  readonly events: Array<[string, Record<string, unknown> | undefined]> = []
  links: Array<Tracer.SpanLink>
  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.status = { _tag: "Started", startTime }
    this.spanId = Math.random().toString(16).slice(2)
    this.traceId = Option.isSome(parent) ? parent.value.traceId : Math.random().toString(16).slice(2)
    this.links = [...links]
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
  }
  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }
  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push([name, attributes])
  }
  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.links.push(...links)
  }
}

const json = (value: unknown): string => {
  const seen = new WeakSet<object>()
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString()
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]"
        seen.add(v)
      }
      return v
    }) ?? ""
  } catch (e) {
    return `(not serialisable: ${String(e)})`
  }
}

/** A value every way an exporter or a logger could print it: `String`, JSON, Node's inspect. */
export const show = (value: unknown): string => {
  let text: string
  try {
    text = String(value)
  } catch {
    text = "(no string form)"
  }
  return `${text} ${json(value)} ${inspect(value, { depth: 8, breakLength: Infinity })}`
}

/** An error as a person or an exporter sees it: message, string, JSON, stack, inspect. */
export const showError = (error: unknown): string => {
  const e = error as { readonly message?: unknown; readonly stack?: unknown }
  return [show(error), String(e?.message ?? ""), String(e?.stack ?? "")].join(" ")
}

/** A cause: pretty, every failure and defect shown in full, and the cause's own JSON. */
export const showCause = (cause: Cause.Cause<unknown>): string =>
  [
    Cause.pretty(cause, { renderErrorCause: true }),
    ...Cause.failures(cause).pipe((chunk) => [...chunk].map(showError)),
    ...Cause.defects(cause).pipe((chunk) => [...chunk].map(showError)),
    json(cause)
  ].join("\n")

/**
 * An exit: the success value or the failure cause, in full — serialised the way Effect
 * serialises outside a fiber, with its default redaction (the `Authorization` header of a
 * platform request shows as `<redacted>`).
 *
 * One exception, for the platform's own `http.client` spans only (`platformSpan`): their
 * success value, a live `HttpClientResponse`, is shown as its status. Serialising one reads
 * its body and prints its request. No exporter does that (OpenTelemetry and the DevTools
 * export a span's status, and for a failure its pretty cause, never its success value). The
 * library's own spans get no exception: none of them ends with a response.
 */
export const showExit = (exit: Exit.Exit<unknown, unknown>, platformSpan = false): string =>
  Inspectable.withRedactableContext(FiberRefs.empty(), () =>
    Exit.isSuccess(exit)
      ? platformSpan && HttpClientResponse.TypeId in Object(exit.value)
        ? `success HttpClientResponse ${(exit.value as HttpClientResponse.HttpClientResponse).status}`
        : `success ${show(exit.value)}`
      : `failure ${showCause(exit.cause)}`)

const showSpan = (span: CapturedSpan): string => {
  const parts = [`span ${span.name} kind=${span.kind}`]
  if (Option.isSome(span.parent) && span.parent.value._tag === "Span") parts.push(`parent=${span.parent.value.name}`)
  for (const [k, v] of span.attributes) parts.push(`${k}=${show(v)}`)
  for (const [name, attrs] of span.events) parts.push(`event ${name} ${show(attrs)}`)
  for (const link of span.links) {
    parts.push(`link ${link.span._tag === "Span" ? link.span.name : link.span.spanId} ${show(link.attributes)}`)
  }
  parts.push(span.status._tag === "Ended" ? showExit(span.status.exit, span.name.startsWith("http.client ")) : "not ended")
  return parts.join(" ")
}

/** A layer that records logs (every level) and spans into `captured`. */
export const capture = (): { readonly captured: Captured; readonly layer: Layer.Layer<never> } => {
  const logs: Array<string> = []
  const spans: Array<CapturedSpan> = []
  const logger = Logger.make(({ annotations, cause, context, date, fiberId, logLevel, message, spans: logSpans }) => {
    // Formatted the way Effect's own loggers do: within the fiber's redaction context.
    const line = Inspectable.withRedactableContext(context, () =>
      [
        logLevel.label,
        date.toISOString(),
        String(fiberId._tag),
        show(message),
        Cause.isEmpty(cause) ? "" : showCause(cause),
        show(HashMap.toEntries(annotations)),
        show(List.toArray(logSpans).map((s) => s.label))
      ].join(" "))
    // ... and without it, as a naive logger that just serialises what it is handed.
    logs.push(`${line} ${show(message)} ${Cause.isEmpty(cause) ? "" : showCause(cause)}`)
  })
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new CapturedSpan(name, parent, context, links, startTime, kind)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  const layer = Layer.mergeAll(
    Logger.replace(Logger.defaultLogger, logger),
    Logger.minimumLogLevel(LogLevel.All),
    Layer.setTracer(tracer)
  )
  return {
    captured: { logs, spans, dump: () => [...logs, ...spans.map(showSpan)].join("\n") },
    layer
  }
}
