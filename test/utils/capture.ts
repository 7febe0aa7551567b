/**
 * Captures everything the library emits — log lines and spans with their
 * attributes, events and exits — so tests can assert no secret ever leaves it.
 */
import { Cause, Exit, HashMap, Layer, List, Logger, LogLevel, Option, Tracer } from "effect"
import type { Context } from "effect"

export interface Captured {
  readonly logs: Array<string>
  readonly spans: Array<CapturedSpan>
  /** Everything as one string, for `not.toContain` checks. */
  readonly dump: () => string
}

class CapturedSpan implements Tracer.Span {
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

const show = (value: unknown): string => {
  try {
    return `${String(value)} ${JSON.stringify(value)}`
  } catch {
    return String(value)
  }
}

const showSpan = (span: CapturedSpan): string => {
  const parts = [span.name]
  for (const [k, v] of span.attributes) parts.push(`${k}=${show(v)}`)
  for (const [name, attrs] of span.events) parts.push(`${name} ${show(attrs)}`)
  if (span.status._tag === "Ended" && Exit.isFailure(span.status.exit)) {
    parts.push(Cause.pretty(span.status.exit.cause))
    for (const e of Cause.failures(span.status.exit.cause)) parts.push(show(e), (e as { message?: string }).message ?? "")
  }
  return parts.join(" ")
}

/** A layer that records logs (all levels) and spans into `captured`. */
export const capture = (): { readonly captured: Captured; readonly layer: Layer.Layer<never> } => {
  const logs: Array<string> = []
  const spans: Array<CapturedSpan> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message, spans: logSpans }) => {
    logs.push(
      [
        logLevel.label,
        show(message),
        Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
        show(HashMap.toEntries(annotations)),
        show(List.toArray(logSpans).map((s) => s.label))
      ].join(" ")
    )
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
