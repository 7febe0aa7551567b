import { describe, expect, it } from "@effect/vitest"
import { HttpClient } from "@effect/platform"
import { Chunk, Effect, Either, Fiber, Layer, Redacted, Schema, Stream, TestClock } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as Machine from "../src/Machine.ts"
import * as MachineAction from "../src/MachineAction.ts"
import {
  API,
  CANARY_TOKEN,
  clientLayer,
  type Fake,
  json,
  LIBRARY_FILES_EXAMPLE,
  listAnswer,
  makeFake,
  odataError
} from "./utils/fake.ts"
import { capture } from "./utils/capture.ts"

const API_HOST = new URL(API).host
const machine = (id: string, extra: Record<string, unknown> = {}) => ({ id, computerDnsName: `${id}.contoso.com`, ...extra })

/** A machines list of `pages` pages of two machines each, linked through `@odata.nextLink`. */
const pagedMachines = (pages: number) =>
  makeFake((req) => {
    const page = Number(req.url.searchParams.get("$skiptoken") ?? "1")
    const next = page < pages ? `${API}/api/machines?$skiptoken=${page + 1}` : undefined
    return listAnswer([machine(`m${page}a`), machine(`m${page}b`)], next)
  })

/** The client over `fake`, with a tiny machine-actions budget when given. */
const withBudget = (fake: Fake, machineActionLimits: ReadonlyArray<DefenderRateLimiter.RateLimit>) =>
  DefenderClient.layer().pipe(
    Layer.provide(Layer.merge(
      DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)),
      // The results budget is closed: a list call that took from it would never run.
      DefenderRateLimiter.layer({ machineActionLimits, limits: [{ limit: 1, window: "1000 days" }] })
    )),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, fake.client))
  )

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

describe("listMachines", () => {
  it.effect("reads every page through @odata.nextLink, with the bearer token", () => {
    const fake = pagedMachines(3)
    return Effect.gen(function*() {
      const machines = yield* collect(LiveResponse.listMachines())
      expect(machines.map((m) => m.id)).toEqual(["m1a", "m1b", "m2a", "m2b", "m3a", "m3b"])
      expect(machines[0]!.computerDnsName).toBe("m1a.contoso.com")
      expect(fake.requests.map((r) => r.url.href)).toEqual([
        `${API}/api/machines`,
        `${API}/api/machines?$skiptoken=2`,
        `${API}/api/machines?$skiptoken=3`
      ])
      expect(fake.requests.every((r) => r.method === "GET" && r.headers["authorization"] === `Bearer ${CANARY_TOKEN}`))
        .toBe(true)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("fetches pages lazily: taking one machine reads one page, three read two", () => {
    const fake = pagedMachines(3)
    return Effect.gen(function*() {
      const one = yield* collect(Stream.take(LiveResponse.listMachines(), 1))
      expect(one.map((m) => m.id)).toEqual(["m1a"])
      expect(fake.requests).toHaveLength(1)
      fake.requests.length = 0
      yield* collect(Stream.take(LiveResponse.listMachines(), 3))
      expect(fake.requests).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("sends $filter URL-encoded and $top, and stops at top entries", () => {
    const fake = pagedMachines(3)
    const filter = `${Machine.filterByTag("prod")} and computerDnsName eq 'a&b#c+d' and osPlatform eq 'Windows10'`
    return Effect.gen(function*() {
      const machines = yield* collect(LiveResponse.listMachines({ filter, top: 3 }))
      expect(machines).toHaveLength(3)
      const [first] = fake.requests
      expect(first!.url.searchParams.get("$filter")).toBe(filter)
      expect(first!.url.searchParams.get("$top")).toBe("3")
      expect([...first!.url.searchParams.keys()]).toEqual(["$filter", "$top"])
      // Nothing of the filter is read as a separator or a fragment, and spaces are %20, not `+`.
      expect(first!.url.hash).toBe("")
      expect(first!.url.search).not.toMatch(/[ +]/)
      expect(first!.url.search).toContain("%20")
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("refuses a bad $top or maxPages before anything is sent", () => {
    const fake = pagedMachines(1)
    return Effect.gen(function*() {
      for (const options of [{ top: 0 }, { top: 10_001 }, { top: 1.5 }, { maxPages: 0 }]) {
        const error = yield* Effect.flip(collect(LiveResponse.listMachines(options)))
        expect(error._tag).toBe("InvalidArgument")
      }
      expect(fake.requests).toHaveLength(0)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("never follows a nextLink to another origin: scheme, host or port", () =>
    Effect.gen(function*() {
      for (
        const link of [
          "https://evil.example.com/api/machines?$skiptoken=2&secret=path",
          "http://api.security.microsoft.com/api/machines?$skiptoken=2",
          "https://api.security.microsoft.com:8443/api/machines?$skiptoken=2",
          "//evil.example.com/api/machines"
        ]
      ) {
        const fake = makeFake((req) =>
          req.url.host === API_HOST && req.url.protocol === "https:"
            ? listAnswer([machine("m1")], link)
            : listAnswer([machine("stolen")])
        )
        const results = yield* collect(Stream.either(LiveResponse.listMachines())).pipe(
          Effect.provide(clientLayer(fake))
        )
        // The first page's machines arrive, then the refusal.
        expect(results[0]).toEqual(Either.right(expect.objectContaining({ id: "m1" })))
        const error = results[1]
        expect(error !== undefined && Either.isLeft(error)).toBe(true)
        if (error === undefined || Either.isRight(error)) continue
        expect(error.left._tag).toBe("HttpError")
        if (error.left._tag !== "HttpError") continue
        expect(error.left.reason).toBe("InvalidResponse")
        const origin = new URL(link, API).origin
        expect(error.left.message).toContain(origin)
        expect(error.left.message).not.toContain("secret=path")
        expect(fake.requests).toHaveLength(1)
      }
    }))

  it.effect("bounds the pages: a server that keeps linking stops at maxPages, one that loops at once", () =>
    Effect.gen(function*() {
      const endless = pagedMachines(1_000_000)
      const error = yield* Effect.flip(collect(LiveResponse.listMachines({ maxPages: 3 }))).pipe(
        Effect.provide(clientLayer(endless))
      )
      expect(endless.requests).toHaveLength(3)
      expect(error._tag === "HttpError" && error.reason).toBe("InvalidResponse")
      expect(error.message).toContain("maxPages")

      const looping = makeFake(() => listAnswer([machine("m")], `${API}/api/machines?$skiptoken=1`))
      const loop = yield* Effect.flip(collect(LiveResponse.listMachines())).pipe(Effect.provide(clientLayer(looping)))
      expect(looping.requests).toHaveLength(2)
      expect(loop.message).toContain("repeats a page")
    }))

  it.effect("decodes nulls and odd types as undefined; an entry without id fails the list", () =>
    Effect.gen(function*() {
      const odd = makeFake(() =>
        listAnswer([
          machine("m1", {
            riskScore: null,
            osBuild: "n/a",
            rbacGroupId: 7,
            machineTags: ["prod", 3, null, "eu"],
            lastSeen: "2024-05-01T10:00:00.1234567Z",
            healthStatus: 42,
            isAadJoined: "yes",
            aadDeviceId: null,
            unknownField: { nested: true }
          }),
          { id: "m2", machineTags: null }
        ])
      )
      const [m1, m2] = yield* collect(LiveResponse.listMachines()).pipe(Effect.provide(clientLayer(odd)))
      expect(m1).toMatchObject({
        id: "m1",
        riskScore: undefined,
        osBuild: undefined,
        rbacGroupId: 7,
        machineTags: ["prod", "eu"],
        lastSeen: "2024-05-01T10:00:00.1234567Z",
        healthStatus: undefined,
        isAadJoined: undefined,
        aadDeviceId: undefined
      })
      expect(m2).toMatchObject({ id: "m2", machineTags: [], computerDnsName: undefined })

      const noId = makeFake(() => listAnswer([machine("m1"), { computerDnsName: "x" }]))
      const error = yield* Effect.flip(collect(LiveResponse.listMachines())).pipe(Effect.provide(clientLayer(noId)))
      expect(error._tag === "HttpError" && error.reason).toBe("InvalidResponse")
      expect(error.message).toContain("entry 1 is not a machine: id: is missing")

      const notAList = makeFake(() => json(200, { value: "nope" }))
      const shape = yield* Effect.flip(collect(LiveResponse.listMachines())).pipe(Effect.provide(clientLayer(notAList)))
      expect(shape.message).toContain("no `value` array")
    }))

  it("Machine.schema decodes as tolerantly as Machine.decode", () => {
    expect(Schema.decodeUnknownSync(Machine.schema)({ id: "a", osBuild: "x" }).osBuild).toBeUndefined()
    expect(() => Schema.decodeUnknownSync(Machine.schema)({ osBuild: 1 })).toThrow(/id: is missing/)
    expect(Either.isLeft(Machine.decode([]))).toBe(true)
  })
})

describe("listMachineActions", () => {
  it.effect("reads many actions in one call with MachineAction.filterByIds", () => {
    const fake = makeFake(() =>
      listAnswer([
        { id: "a1", status: "Succeeded", type: "LiveResponse", errorHResult: "0x80070005" },
        { id: "o'brien", status: "Canceled", commands: null }
      ])
    )
    return Effect.gen(function*() {
      const actions = yield* collect(LiveResponse.listMachineActions({ filter: MachineAction.filterByIds(["a1", "o'brien"]) }))
      expect(actions.map((a) => [a.id, a.status])).toEqual([["a1", "Succeeded"], ["o'brien", "Cancelled"]])
      expect(actions[0]!.errorHResult).toBeUndefined()
      const [request] = fake.requests
      expect(request!.url.pathname).toBe("/api/machineactions")
      expect(request!.url.searchParams.get("$filter")).toBe("id in ('a1','o''brien')")
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it("filterByIds and filterByTag quote as OData quotes", () => {
    expect(MachineAction.filterByIds(["a"])).toBe("id in ('a')")
    expect(MachineAction.filterByIds(["a", "b'c", "''"])).toBe("id in ('a','b''c','''''')")
    expect(Machine.filterByIds(["x", "y"])).toBe("id in ('x','y')")
    expect(Machine.filterByTag("it's")).toBe("machineTags/any(t: t eq 'it''s')")
  })
})

describe("library files", () => {
  it.effect("listLibraryFiles decodes the documented example", () => {
    const fake = makeFake(() => json(200, LIBRARY_FILES_EXAMPLE))
    return Effect.gen(function*() {
      const files = yield* LiveResponse.listLibraryFiles()
      expect(files.map((f) => f.fileName)).toEqual(["script1.ps1", "script.sh", "memdump.exe"])
      expect(files[0]).toEqual({
        fileName: "script1.ps1",
        sha256: "6e212a0db618507c44e4ec8ee7499dfef7e5767e5f8d31144df3b96fd1145caf",
        description: undefined,
        creationTime: "2019-10-24T10:54:23.2009016Z",
        lastUpdatedTime: "2019-10-24T10:54:23.2009016Z",
        createdBy: "admin",
        hasParameters: true,
        parametersDescription: "test"
      })
      expect(files[1]!.hasParameters).toBe(false)
      expect(files[1]!.parametersDescription).toBeUndefined()
      expect(files[2]!.description).toBe("Process memory dump")
      expect(fake.requests.map((r) => `${r.method} ${r.url.href}`)).toEqual([`GET ${API}/api/libraryfiles`])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("deleteLibraryFile: 204 is done, 404 is NotFound, a path is refused before sending", () => {
    const fake = makeFake((req) =>
      req.url.pathname.endsWith("/collect.ps1")
        ? new Response(null, { status: 204 })
        : odataError(404, "NotFound", "Library file not found")
    )
    return Effect.gen(function*() {
      yield* LiveResponse.deleteLibraryFile("collect.ps1")
      expect(fake.requests.map((r) => `${r.method} ${r.url.href}`)).toEqual([`DELETE ${API}/api/libraryfiles/collect.ps1`])
      const missing = yield* Effect.flip(LiveResponse.deleteLibraryFile("gone.ps1"))
      expect(missing._tag).toBe("NotFound")
      expect(missing.message).toContain("library file gone.ps1")
      const path = yield* Effect.flip(LiveResponse.deleteLibraryFile("../machines"))
      expect(path._tag).toBe("InvalidArgument")
      expect(fake.requests).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("deleteLibraryFile is retried on a 503 (deleting twice is harmless)", () => {
    let calls = 0
    const fake = makeFake(() =>
      ++calls === 1 ? odataError(503, "ServiceUnavailable", "busy", { "retry-after": "1" }) : new Response(null, { status: 204 })
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.deleteLibraryFile("collect.ps1"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(fake.requests.map((r) => r.at)).toEqual([0, 1000])
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})

describe("spans", () => {
  it.effect("each page is a DefenderClient.listMachines span with the filter and page; delete has its own", () => {
    const fake = pagedMachines(2)
    const { captured, layer } = capture()
    return Effect.gen(function*() {
      yield* collect(LiveResponse.listMachines({ filter: "healthStatus eq 'Active'", top: 10 }))
      yield* Effect.ignore(LiveResponse.deleteLibraryFile("collect.ps1"))
      const pages = captured.spans.filter((s) => s.name === "DefenderClient.listMachines")
      expect(pages.map((s) => [s.attributes.get("mde.filter"), s.attributes.get("mde.top"), s.attributes.get("mde.page")]))
        .toEqual([["healthStatus eq 'Active'", 10, 1], ["healthStatus eq 'Active'", 10, 2]])
      expect(pages.map((s) => s.attributes.get("mde.entries"))).toEqual([2, 2])
      const deleted = captured.spans.find((s) => s.name === "DefenderClient.deleteLibraryFile")
      expect(deleted?.attributes.get("mde.file_name")).toBe("collect.ps1")
      expect(captured.dump()).not.toContain(CANARY_TOKEN)
    }).pipe(Effect.provide(clientLayer(fake)), Effect.provide(layer))
  })
})

describe("budget and retries", () => {
  it.effect("every list page and library call takes a machine-actions permit", () => {
    const fake = makeFake((req) =>
      req.url.pathname === "/api/machines"
        ? listAnswer([machine("m")], req.url.search === "" ? `${API}/api/machines?$skiptoken=2` : undefined)
        : req.url.pathname === "/api/machineactions"
        ? listAnswer([{ id: "a", status: "Pending" }])
        : req.method === "DELETE"
        ? new Response(null, { status: 204 })
        : json(200, LIBRARY_FILES_EXAMPLE)
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.all([
        collect(LiveResponse.listMachines()),
        collect(LiveResponse.listMachineActions({ filter: "status eq 'Pending'" })),
        LiveResponse.listLibraryFiles(),
        LiveResponse.deleteLibraryFile("collect.ps1")
      ]))
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(fiber)
      expect(fake.requests.map((r) => r.at)).toEqual([0, 5000, 10000, 15000, 20000])
    }).pipe(Effect.provide(withBudget(fake, [{ limit: 1, window: "5 seconds" }])))
  })

  it.effect("a 429 with Retry-After is waited out and the page read again", () => {
    let calls = 0
    const fake = makeFake(() =>
      ++calls === 2
        ? odataError(429, "TooManyRequests", "slow down", { "retry-after": "7" })
        : listAnswer([machine(`m${calls}`)], calls === 1 ? `${API}/api/machines?$skiptoken=2` : undefined)
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(collect(LiveResponse.listMachines()))
      yield* TestClock.adjust("7 seconds")
      const machines = yield* Fiber.join(fiber)
      expect(machines.map((m) => m.id)).toEqual(["m1", "m3"])
      expect(fake.requests.map((r) => [r.url.search, r.at])).toEqual([
        ["", 0],
        ["?$skiptoken=2", 0],
        ["?$skiptoken=2", 7000]
      ])
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})
