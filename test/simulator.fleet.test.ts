// The simulator's fleet (issue 12, item 7): machines and their list, the machine actions list,
// the session cap, offline and busy machines, the fleet preset, the library list and delete —
// all on the TestClock, through `sim.handle` or plain `HttpClient` requests.
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, TestClock } from "effect"
import fc from "fast-check"
import { createHash } from "node:crypto"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { matches, parseFilter } from "../src/testing/internal/odata.ts"

const API = "https://api.security.microsoft.com"
const BEARER = { authorization: `Bearer ${Redacted.value(DefenderSimulator.STATIC_TOKEN)}` }

const call = (sim: DefenderSimulator.DefenderSimulator, path: string, init?: RequestInit) =>
  Effect.map(
    sim.handle(new Request(path.startsWith("http") ? path : `${API}${path}`, { ...init, headers: { ...BEARER, ...init?.headers } })),
    (r) => r!
  )

const body = (response: Response): Effect.Effect<any> => Effect.promise(() => response.json())

const list = (sim: DefenderSimulator.DefenderSimulator, path: string, filter?: string) =>
  Effect.flatMap(
    call(sim, filter === undefined ? path : `${path}${path.includes("?") ? "&" : "?"}$filter=${encodeURIComponent(filter)}`),
    (r) => Effect.map(body(r), (b) => ({ status: r.status, body: b }))
  )

const ids = (answer: { readonly body: any }): Array<string> => answer.body.value.map((m: any) => m.id)

const run = (sim: DefenderSimulator.DefenderSimulator, machineId: string, script = "collect.ps1") =>
  Effect.flatMap(
    call(sim, `/api/machines/${machineId}/runliveresponse`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        Commands: [{ type: "RunScript", params: [{ key: "ScriptName", value: script }] }],
        Comment: "fleet test"
      })
    }),
    (r) => Effect.map(body(r), (b) => ({ status: r.status, headers: r.headers, body: b }))
  )

const statusOf = (sim: DefenderSimulator.DefenderSimulator, id: string) =>
  Effect.map(Effect.flatMap(call(sim, `/api/machineactions/${id}`), body), (b) => b.status as string)

const MANY_RUNS = [{ limit: 10_000, window: "1 minute" }] as const

const machines: ReadonlyArray<DefenderSimulator.MachineSpec> = [
  { id: "m1", properties: { osPlatform: "Windows11", healthStatus: "Active", machineTags: ["prod", "web"], riskScore: "High", lastSeen: "2024-03-01T00:00:00Z" } },
  { id: "m2", properties: { osPlatform: "Windows10", healthStatus: "Inactive", machineTags: ["test"], riskScore: "Low", lastSeen: "2024-01-01T00:00:00Z" } },
  { id: "m3", properties: { osPlatform: "Linux", healthStatus: "NoSensorData", machineTags: ["prod", "db"], rbacGroupId: 7, lastSeen: "2024-02-01T00:00:00Z" } },
  { id: "m4", properties: { computerDnsName: "o'brien.contoso.example", osPlatform: "macOS", healthStatus: "ImpairedCommunication" } },
  { id: "m5", properties: { osPlatform: "Windows11", healthStatus: "Active", exposureLevel: "High", onboardingStatus: "CanBeOnboarded" } }
]

describe("the $filter parser", () => {
  const fields = new Set(["a", "n", "tags", "t"])
  const test = (filter: string, item: Record<string, unknown>): boolean => {
    const parsed = parseFilter(filter, fields)
    if ("error" in parsed) throw new Error(parsed.error)
    return matches(parsed.filter, item)
  }

  it("each operator, and/or/not, parentheses, in, any, escaping, datetimes, null", () => {
    expect(test("n eq 3", { n: 3 })).toBe(true)
    expect(test("n ne 3", { n: 3 })).toBe(false)
    expect(test("n gt 2 and n ge 3 and n lt 4 and n le 3", { n: 3 })).toBe(true)
    expect(test("n gt 3 or n lt 3", { n: 3 })).toBe(false)
    expect(test("n eq -1.5", { n: -1.5 })).toBe(true)
    expect(test("a eq 'x' and (n eq 1 or n eq 2)", { a: "x", n: 2 })).toBe(true)
    expect(test("(a eq 'x' and n eq 1) or n eq 2", { a: "y", n: 1 })).toBe(false)
    expect(test("not (a eq 'x')", { a: "y" })).toBe(true)
    expect(test("a in ('x', 'y')", { a: "y" })).toBe(true)
    expect(test("a in ('x')", { a: "z" })).toBe(false)
    expect(test("a eq 'o''brien'", { a: "o'brien" })).toBe(true)
    expect(test("a eq ''''", { a: "'" })).toBe(true)
    expect(test("tags/any(x: x eq 'prod')", { tags: ["web", "prod"] })).toBe(true)
    expect(test("tags/any(x: x eq 'prod' or x eq 'db')", { tags: ["web"] })).toBe(false)
    expect(test("tags/any(x: x eq 'prod')", { tags: undefined })).toBe(false)
    expect(test("t gt 2024-01-01T00:00:00Z", { t: "2024-01-01T00:00:01Z" })).toBe(true)
    expect(test("t lt 2024-01-01T00:00:00.5+01:00", { t: "2023-12-31T23:00:00.000Z" })).toBe(true)
    expect(test("a eq null", { a: null })).toBe(true)
    expect(test("a eq true", { a: true })).toBe(true)
    // A type mismatch is no match, not an error.
    expect(test("n eq 'three'", { n: 3 })).toBe(false)
  })

  it("anything else is an error message, never a throw", () => {
    const garbage = [
      "",
      "a",
      "a eq",
      "a eq 'x",
      "a eq 'x' and",
      "a foo 'x'",
      "b eq 'x'",
      "(a eq 'x'",
      "a eq 'x')",
      "tags/all(x: x eq 'a')",
      "tags/any(x: x/any(y: y eq 'a'))",
      "a in ()",
      "a eq 'x' ; drop",
      "((((((((((((((((((((((((((((((((((((a eq 1))))))))))))))))))))))))))))))))))",
      "a eq 2024-13-45T99:99:99Z",
      "\u0000"
    ]
    for (const filter of garbage) expect("error" in parseFilter(filter, fields), filter).toBe(true)
  })

  it.effect("property: random text never throws, and the endpoint answers it with 200 or 400", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines, rateLimits: [{ limit: 1_000_000, window: "1 minute" }] })
      const text = fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.array(
          fc.constantFrom("id", "osPlatform", "machineTags", "eq", "ne", "gt", "in", "and", "or", "not", "(", ")", ",", "'a'", "''", "'", "/any(", "t:", "t", "3", "2024-01-01T00:00:00Z", "null"),
          { maxLength: 20 }
        ).map((words) => words.join(" "))
      )
      const samples = fc.sample(text, { seed: 20260512, numRuns: 400 })
      for (const filter of samples) {
        expect(() => parseFilter(filter, new Set(["id", "osPlatform", "machineTags"]))).not.toThrow()
        const answer = yield* list(sim, "/api/machines", filter)
        expect([200, 400], filter).toContain(answer.status)
        if (answer.status === 400) expect(answer.body.error.code).toBe("InvalidRequest")
      }
    }))
})

describe("GET /api/machines", () => {
  it.effect("filters on the documented properties", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines })
      expect(ids(yield* list(sim, "/api/machines", "osPlatform eq 'Windows11'"))).toEqual(["m1", "m5"])
      expect(ids(yield* list(sim, "/api/machines", "machineTags/any(t: t eq 'prod')"))).toEqual(["m1", "m3"])
      expect(ids(yield* list(sim, "/api/machines", "healthStatus ne 'Active'"))).toEqual(["m2", "m3", "m4"])
      expect(ids(yield* list(sim, "/api/machines", "lastSeen gt 2024-01-15T00:00:00Z and lastSeen lt 2024-06-01T00:00:00Z"))).toEqual(["m1", "m3"])
      expect(ids(yield* list(sim, "/api/machines", "computerDnsName eq 'o''brien.contoso.example'"))).toEqual(["m4"])
      expect(ids(yield* list(sim, "/api/machines", "id in ('m2','m5','nope')"))).toEqual(["m2", "m5"])
      expect(ids(yield* list(sim, "/api/machines", "rbacGroupId eq 7 or (riskScore eq 'High' and healthStatus eq 'Active')"))).toEqual(["m1", "m3"])
      expect(ids(yield* list(sim, "/api/machines", "exposureLevel eq 'High' and onboardingStatus eq 'CanBeOnboarded'"))).toEqual(["m5"])
      const all = yield* list(sim, "/api/machines")
      expect(all.body["@odata.context"]).toContain("$metadata#Machines")
      expect(all.body["@odata.nextLink"]).toBeUndefined()
      expect(all.body.value[3]).toMatchObject({
        id: "m4",
        computerDnsName: "o'brien.contoso.example",
        osPlatform: "macOS",
        healthStatus: "ImpairedCommunication",
        machineTags: [],
        onboardingStatus: "Onboarded"
      })
      expect(Object.keys(all.body.value[0])).toEqual(expect.arrayContaining(["lastSeen", "firstSeen", "riskScore", "exposureLevel", "rbacGroupId", "lastIpAddress", "aadDeviceId"]))
      expect(sim.count("listMachines", 200)).toBe(9)
    }))

  it.effect("a filter it does not understand is a 400 InvalidRequest", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines })
      for (const filter of ["osPlatform eq", "secret eq 'x'", "osPlatform eq 'a' or", "machineTags/all(t: t eq 'x')"]) {
        const answer = yield* list(sim, "/api/machines", filter)
        expect(answer.status, filter).toBe(400)
        expect(answer.body.error.code).toBe("InvalidRequest")
      }
      expect((yield* list(sim, "/api/machines?$top=-1")).status).toBe(400)
      expect((yield* list(sim, "/api/machines?$skip=abc")).status).toBe(400)
    }))

  it.effect("pages through @odata.nextLink ($top, $skip, the page size), on the request's own origin", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines, pageSize: 2 })
      const seen: Array<string> = []
      let next: string | undefined = "https://eu.api.security.microsoft.com/api/machines?$filter=osPlatform%20ne%20'none'"
      let pages = 0
      while (next !== undefined) {
        const page: { readonly body: any } = yield* list(sim, next)
        seen.push(...ids(page))
        next = page.body["@odata.nextLink"]
        if (next !== undefined) expect(next.startsWith("https://eu.api.security.microsoft.com/api/machines?")).toBe(true)
        pages += 1
      }
      expect(seen).toEqual(["m1", "m2", "m3", "m4", "m5"])
      expect(pages).toBe(3)
      const small = yield* list(sim, "/api/machines?$top=1&$skip=3")
      expect(ids(small)).toEqual(["m4"])
      expect(small.body["@odata.nextLink"]).toBe(`${API}/api/machines?$top=1&$skip=4`)
      expect(ids(yield* list(sim, "/api/machines?$top=50&$skip=4"))).toEqual(["m5"])
    }))

  it.effect("through layerHttpClient with a plain HttpClient request", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines })
      const answer: any = yield* Effect.flatMap(HttpClient.HttpClient, (client) =>
        client.execute(
          HttpClientRequest.get(`${API}/api/machines`).pipe(
            HttpClientRequest.setUrlParam("$filter", "machineTags/any(t: t eq 'test')"),
            HttpClientRequest.bearerToken(Redacted.value(DefenderSimulator.STATIC_TOKEN))
          )
        )).pipe(Effect.flatMap((response) => response.json), Effect.provide(DefenderSimulator.layerHttpClient(sim)))
      expect(answer.value.map((m: any) => m.id)).toEqual(["m2"])
    }))

  it.effect("without a fleet the list is empty and any machine id can run, as before", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      expect((yield* list(sim, "/api/machines")).body.value).toEqual([])
      expect((yield* run(sim, "any-machine-at-all")).status).toBe(201)
    }))
})

describe("the fleet's machines", () => {
  it.effect("an unknown machine id is 404 ResourceNotFound when a fleet is configured", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines })
      const answer = yield* run(sim, "not-in-fleet")
      expect(answer.status).toBe(404)
      expect(answer.body.error.code).toBe("ResourceNotFound")
      expect((yield* run(sim, "m1")).status).toBe(201)
    }))

  it.effect("a busy machine answers ActiveRequestAlreadyExists until busyUntil", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines: [{ id: "busy", busyUntil: 5 * 60_000 }] })
      const first = yield* run(sim, "busy")
      expect(first.status).toBe(400)
      expect(first.body.error.code).toBe("ActiveRequestAlreadyExists")
      yield* TestClock.adjust("4 minutes")
      expect((yield* run(sim, "busy")).body.error.code).toBe("ActiveRequestAlreadyExists")
      yield* TestClock.adjust("1 minute")
      expect((yield* run(sim, "busy")).status).toBe(201)
    }))

  it.effect("an offline machine's action stays Pending until it comes online, then runs", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({
        machines: [{ id: "late", online: { from: 60_000 }, runFor: "10 seconds" }]
      })
      const action = (yield* run(sim, "late")).body
      expect(action.status).toBe("Pending")
      yield* TestClock.adjust("61 seconds")
      expect(yield* statusOf(sim, action.id)).toBe("Pending") // online at 60 s, then pendingFor (2 s)
      yield* TestClock.adjust("1 second")
      expect(yield* statusOf(sim, action.id)).toBe("InProgress")
      yield* TestClock.adjust("10 seconds")
      expect(yield* statusOf(sim, action.id)).toBe("Succeeded")
    }))

  it.effect("offline for the whole queueing time: TimeOut without having started; a Pending action can be cancelled", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({
        machines: [{ id: "gone", online: false }, { id: "gone2", online: { from: 0, until: 0 } }]
      })
      const action = (yield* run(sim, "gone")).body
      yield* TestClock.adjust("119 minutes")
      expect(yield* statusOf(sim, action.id)).toBe("Pending")
      yield* TestClock.adjust("1 minute")
      const ended = yield* Effect.flatMap(call(sim, `/api/machineactions/${action.id}`), body)
      expect(ended.status).toBe("TimeOut")
      expect(ended.commands[0].startTime).toBeNull()
      const other = (yield* run(sim, "gone2")).body
      const cancelled = yield* call(sim, `/api/machineactions/${other.id}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ Comment: "never came online" })
      })
      expect(cancelled.status).toBe(200)
      expect(yield* statusOf(sim, other.id)).toBe("Cancelled")
    }))

  it.effect("the queueing time is an option", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines: [{ id: "gone", online: false }], queueTimeout: "10 minutes" })
      const action = (yield* run(sim, "gone")).body
      yield* TestClock.adjust("10 minutes")
      expect(yield* statusOf(sim, action.id)).toBe("TimeOut")
    }))

  it.effect("a machine's outcome: Failed with errors, TimeOut after ten minutes", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines: [{ id: "f", outcome: "Failed" }, { id: "t", outcome: "TimeOut" }] })
      const failed = (yield* run(sim, "f")).body
      const timedOut = (yield* run(sim, "t")).body
      yield* TestClock.adjust("1 minute")
      const f = yield* Effect.flatMap(call(sim, `/api/machineactions/${failed.id}`), body)
      expect(f.status).toBe("Failed")
      expect(f.commands[0].errors.length).toBeGreaterThan(0)
      expect(yield* statusOf(sim, timedOut.id)).toBe("InProgress")
      yield* TestClock.adjust("10 minutes")
      expect(yield* statusOf(sim, timedOut.id)).toBe("TimeOut")
    }))
})

describe("the session cap", () => {
  it.effect("50 Pending actions → the 51st run is 429 with Retry-After; a cancel frees a slot, so does an end", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runLimits: MANY_RUNS, pendingFor: "1 minute", runFor: "1 minute" })
      const started: Array<string> = []
      for (let i = 0; i < 50; i++) {
        const answer = yield* run(sim, `machine-${i}`)
        expect(answer.status).toBe(201)
        expect(answer.body.status).toBe("Pending")
        started.push(answer.body.id)
      }
      const over = yield* run(sim, "machine-50")
      expect(over.status).toBe(429)
      expect(over.body.error.code).toBe("TooManyRequests")
      expect(Number(over.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      yield* call(sim, `/api/machineactions/${started[0]}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ Comment: "free a slot" })
      })
      expect((yield* run(sim, "machine-50")).status).toBe(201)
      expect((yield* run(sim, "machine-51")).status).toBe(429)
      yield* TestClock.adjust("2 minutes") // every action ended
      expect((yield* run(sim, "machine-51")).status).toBe(201)
      expect(sim.count("runLiveResponse", 429)).toBe(2)
    }))

  it.effect("the cap is an option", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ sessionCap: 2 })
      expect((yield* run(sim, "a")).status).toBe(201)
      expect((yield* run(sim, "b")).status).toBe(201)
      expect((yield* run(sim, "c")).status).toBe(429)
    }))
})

describe("GET /api/machineactions", () => {
  it.effect("lists by ids, machine, status, type, requestor and creation time, in pages", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runLimits: MANY_RUNS, pageSize: 2 })
      yield* TestClock.adjust("1 second") // after the presets, made at 0
      const a = (yield* run(sim, "m-a")).body.id
      yield* TestClock.adjust("10 seconds")
      const b = (yield* run(sim, "m-b")).body.id
      const c = (yield* run(sim, "m-c", "fail.ps1")).body.id
      yield* TestClock.adjust("1 minute")
      const byIds = yield* list(sim, "/api/machineactions", `id in ('${a}','${c}')`)
      expect(ids(byIds).sort()).toEqual([a, c].sort())
      expect(byIds.body.value.find((x: any) => x.id === c)).toMatchObject({ status: "Failed", machineId: "m-c", type: "LiveResponse" })
      expect(byIds.body.value[0]["@odata.context"]).toBeUndefined()
      expect(ids(yield* list(sim, "/api/machineactions", `id eq '${b}'`))).toEqual([b])
      expect(ids(yield* list(sim, "/api/machineactions", "machineId eq 'm-b'"))).toEqual([b])
      const failed = yield* list(sim, "/api/machineactions", "status eq 'Failed' and type eq 'LiveResponse'")
      expect(ids(failed)).toContain(c)
      expect(ids(failed)).not.toContain(a)
      const later = yield* list(sim, "/api/machineactions", "creationDateTimeUtc gt 1970-01-01T00:00:05Z")
      expect(ids(later).sort()).toEqual([b, c].sort())
      expect(ids(yield* list(sim, "/api/machineactions", "creationDateTimeUtc ge 1970-01-01T00:00:11Z and creationDateTimeUtc lt 1970-01-01T00:00:12Z")).sort()).toEqual([b, c].sort())
      expect(ids(yield* list(sim, "/api/machineactions", "requestor eq 'simulator@contoso.example' and machineId eq 'm-a'"))).toEqual([a])
      // Eight actions (five presets and three runs), two a page.
      let next: string | undefined = `${API}/api/machineactions`
      const all: Array<string> = []
      while (next !== undefined) {
        const page: { readonly body: any } = yield* list(sim, next)
        all.push(...ids(page))
        next = page.body["@odata.nextLink"]
      }
      expect(all.length).toBe(8)
      expect(new Set(all).size).toBe(8)
      expect(all.slice(0, 3).sort()).toEqual([a, b, c].sort()) // newest first
      expect(sim.count("listMachineActions", 200)).toBe(11)
      expect((yield* list(sim, "/api/machineactions", "commands eq 'x'")).status).toBe(400)
    }))

  it.effect("counts on the machine-actions quota", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: 2, window: "1 minute" }] })
      yield* list(sim, "/api/machineactions")
      yield* call(sim, `/api/machineactions/${DefenderSimulator.ACTIONS.runScript}`)
      const throttled = yield* call(sim, "/api/machineactions")
      expect(throttled.status).toBe(429)
      expect(throttled.headers.get("retry-after")).not.toBeNull()
      expect(sim.count("listMachineActions", 429)).toBe(1)
    }))
})

describe("the fleet preset", () => {
  it("is deterministic, seeded, and has the promised mix", () => {
    const a = DefenderSimulator.fleet(50)
    expect(DefenderSimulator.fleet(50)).toEqual(a)
    expect(DefenderSimulator.fleet(50, { seed: 2 })).not.toEqual(a)
    expect(a.length).toBe(50)
    expect(new Set(a.map((m) => m.id)).size).toBe(50)
    expect(new Set(a.map((m) => m.properties?.computerDnsName)).size).toBe(50)
    const offline = a.filter((m) => typeof m.online === "object")
    expect(offline.length).toBe(5)
    expect(offline.every((m) => m.properties?.healthStatus === "Inactive")).toBe(true)
    expect(a.filter((m) => m.outcome === "Failed").length).toBe(3)
    expect(a.filter((m) => m.outcome === "TimeOut").length).toBe(2)
    expect(a.filter((m) => m.busyUntil !== undefined).length).toBe(3)
    expect(a.filter((m) => m.properties?.healthStatus === "Active").length).toBeGreaterThan(30)
    expect(new Set(a.map((m) => m.properties?.healthStatus))).toEqual(new Set(["Active", "Inactive", "ImpairedCommunication", "NoSensorData"]))
    expect(new Set(a.map((m) => m.properties?.osPlatform)).size).toBeGreaterThan(3)
    expect(new Set(a.map((m) => m.properties?.lastSeen)).size).toBe(50)
    expect(a.some((m) => m.properties?.machineTags?.includes("prod"))).toBe(true)
    // Offline machines were seen days ago; the others within the last half hour of `now`.
    const now = Date.parse("2026-01-01T00:00:00Z")
    const seen = DefenderSimulator.fleet(50, { now }).map((m) => now - Date.parse(m.properties!.lastSeen!))
    expect(seen.every((ago) => ago >= 0)).toBe(true)
  })

  it.effect("runs as a simulator fleet: healthy succeed, busy refuse, offline stay Pending", () =>
    Effect.gen(function*() {
      const specs = DefenderSimulator.fleet(50)
      const sim = yield* DefenderSimulator.make({ machines: specs, runLimits: MANY_RUNS })
      const listed = yield* list(sim, "/api/machines", "healthStatus eq 'Active'")
      expect(listed.body.value.length).toBe(specs.filter((m) => m.properties?.healthStatus === "Active").length)
      const offline = specs.find((m) => typeof m.online === "object")!
      const busy = specs.find((m) => m.busyUntil !== undefined)!
      const healthy = specs.find((m) => m.online === undefined && m.outcome === undefined && m.busyUntil === undefined)!
      const pending = (yield* run(sim, offline.id)).body.id
      expect((yield* run(sim, busy.id)).body.error.code).toBe("ActiveRequestAlreadyExists")
      const ok = (yield* run(sim, healthy.id)).body
      expect(ok.computerDnsName).toBe(healthy.properties?.computerDnsName)
      yield* TestClock.adjust("1 minute")
      expect(yield* statusOf(sim, ok.id)).toBe("Succeeded")
      expect(yield* statusOf(sim, pending)).toBe("Pending")
    }))
})

describe("the library", () => {
  it.effect("lists what was uploaded and deletes it (204, then 404)", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const form = new FormData()
      form.append("file", new File(["Write-Output 'hi'"], "triage.ps1"))
      form.append("Description", "triage")
      form.append("HasParameters", "true")
      form.append("ParametersDescription", "-Verbose")
      expect((yield* call(sim, "/api/libraryfiles", { method: "POST", body: form })).status).toBe(200)
      yield* TestClock.adjust("1 second")
      const listed = yield* list(sim, "/api/libraryfiles")
      expect(listed.body.value).toEqual([{
        fileName: "triage.ps1",
        sha256: createHash("sha256").update("Write-Output 'hi'").digest("hex"),
        description: "triage",
        creationTime: "1970-01-01T00:00:00.000Z",
        createdBy: expect.any(String),
        hasParameters: true,
        parametersDescription: "-Verbose"
      }])
      expect((yield* call(sim, "/api/libraryfiles/triage.ps1", { method: "DELETE" })).status).toBe(204)
      const again = yield* call(sim, "/api/libraryfiles/triage.ps1", { method: "DELETE" })
      expect(again.status).toBe(404)
      expect((yield* body(again)).error.code).toBe("ResourceNotFound")
      expect((yield* list(sim, "/api/libraryfiles")).body.value).toEqual([])
      expect(sim.count("listLibraryFiles", 200)).toBe(2)
      expect(sim.count("deleteLibraryFile", 204)).toBe(1)
      expect(sim.count("deleteLibraryFile", 404)).toBe(1)
    }))
})
