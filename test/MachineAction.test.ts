import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { MachineAction as Public } from "../mod.ts"
import * as MachineAction from "../src/MachineAction.ts"

/*
 * The three fixtures below are Microsoft's own example answers, pasted verbatim (only the
 * `HTTP/1.1 200 Ok` / `Content-type` lines above each body are left out). Their text is that of
 * the MicrosoftDocs/defender-docs repository, which the learn.microsoft.com pages are built from.
 */

/** "Get machineAction API", https://learn.microsoft.com/en-us/defender-endpoint/api/get-machineaction-object (defender-endpoint/api/get-machineaction-object.md). */
const GET_MACHINE_ACTION = String.raw`{
    "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
    "id": "5382f7ea-7557-4ab7-9782-d50480024a4e",
    "type": "Isolate",
    "scope": "Selective",
    "requestor": "Analyst@TestPrd.onmicrosoft.com",
    "requestorComment": "test for docs",
    "status": "Succeeded",
    "machineId": "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378",
    "computerDnsName": "desktop-test",
    "creationDateTimeUtc": "2019-01-02T14:39:38.2262283Z",
    "lastUpdateDateTimeUtc": "2019-01-02T14:40:44.6596267Z",
    "relatedFileInfo": null
}`

/** "Run live response commands on a device", https://learn.microsoft.com/en-us/defender-endpoint/api/run-live-response (defender-endpoint/api/run-live-response.md). */
const RUN_LIVE_RESPONSE = String.raw`{
    "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
    "id": "{machine_action_id}",
    "type": "LiveResponse",
    "requestor": "analyst@microsoft.com",
    "requestorComment": "Testing Live Response API",
    "status": "Pending",
    "machineId": "{machine_id}",
    "computerDnsName": "hostname",
    "creationDateTimeUtc": "2021-02-04T15:36:52.7788848Z",
    "lastUpdateDateTimeUtc": "2021-02-04T15:36:52.7788848Z",
    "errorHResult": 0,
    "commands": [
        {
            "index": 0,
            "startTime": null,
            "endTime": null,
            "commandStatus": "Created",
            "errors": [],
            "command": {
                "type": "RunScript",
                "params": [
                    {
                        "key": "ScriptName",
                        "value": "minidump.ps1"
                    },{
                        "key": "Args",
                        "value": "OfficeClickToRun"
                    }
                ]
            }
        }, {
            "index": 1,
            "startTime": null,
            "endTime": null,
            "commandStatus": "Created",
            "errors": [],
            "command": {
                "type": "GetFile",
                "params": [{
                        "key": "Path", "value": "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip"
                    }
                ]
            }
        }
    ]
}`

/**
 * "List MachineActions API", example 1, https://learn.microsoft.com/en-us/defender-endpoint/api/get-machineactions-collection
 * (defender-endpoint/api/get-machineactions-collection.md). Its items spell the update time
 * `lastUpdateTimeUtc`, where the other pages write `lastUpdateDateTimeUtc`.
 */
const LIST_MACHINE_ACTIONS = String.raw`{
    "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions",
    "value": [
        {
            "id": "69dc3630-1ccc-4342-acf3-35286eec741d",
            "type": "CollectInvestigationPackage",
            "scope": null,
            "requestor": "Analyst@contoso.com",
            "requestorComment": "test",
            "status": "Succeeded",
            "machineId": "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
            "computerDnsName": "desktop-39g9tgl",
            "creationDateTimeUtc": "2018-12-04T12:43:57.2011911Z",
            "lastUpdateTimeUtc": "2018-12-04T12:45:25.4049122Z",
            "relatedFileInfo": null
        },
        {
            "id": "2e9da30d-27f6-4208-81f2-9cd3d67893ba",
            "type": "RunAntiVirusScan",
            "scope": "Full",
            "requestor": "Analyst@contoso.com",
            "requestorComment": "Check machine for viruses due to alert 3212",
            "status": "Succeeded",
            "machineId": "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
            "computerDnsName": "desktop-39g9tgl",
            "creationDateTimeUtc": "2018-12-04T12:18:27.1293487Z",
            "lastUpdateTimeUtc": "2018-12-04T12:18:57.5511934Z",
            "relatedFileInfo": null
        },
        {
            "id": "44cffc15-0e3d-4cbf-96aa-bf76f9b27f5e",
            "type": "StopAndQuarantineFile",
            "scope": null,
            "requestor": "Analyst@contoso.com",
            "requestorComment": "test",
            "status": "Succeeded",
            "machineId": "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f",
            "computerDnsName": "desktop-39g9tgl",
            "creationDateTimeUtc": "2018-12-04T12:15:40.6052029Z",
            "lastUpdateTimeUtc": "2018-12-04T12:16:14.2899973Z",
            "relatedFileInfo": {
                "fileIdentifier": "a0c659857ccbe457fdaf5fe21d54efdcbf6f6508",
                "fileIdentifierType": "Sha1"
            }
        }
    ]
}`

/** Every optional key of a machine action, as the resource type page lists them (https://learn.microsoft.com/en-us/defender-endpoint/api/machineaction) plus `errorHResult` and `troubleshootInfo` from real answers. */
const OPTIONAL_KEYS = [
  "machineId",
  "type",
  "title",
  "scope",
  "requestor",
  "requestorComment",
  "requestSource",
  "externalId",
  "computerDnsName",
  "creationDateTimeUtc",
  "lastUpdateDateTimeUtc",
  "cancellationRequestor",
  "cancellationComment",
  "cancellationDateTimeUtc",
  "errorHResult",
  "relatedFileInfo",
  "troubleshootInfo"
] as const

type Json = Record<string, unknown>

const decoded = (json: unknown): MachineAction.MachineAction => {
  const result = MachineAction.decode(json)
  if (Either.isLeft(result)) throw new Error(`expected a machine action, got: ${result.left}`)
  return result.right
}

const failure = (json: unknown): string => {
  const result = MachineAction.decode(json)
  if (Either.isRight(result)) throw new Error("expected a Left")
  return result.left
}

/** Asserts that each key of the fixture that the library models came through with the same value (`null` as `undefined`). */
const expectNothingLost = (fixture: Json, action: MachineAction.MachineAction) => {
  const keys = Object.keys(fixture).filter((key) => key !== "@odata.context")
  expect(keys.length).toBeGreaterThan(5)
  for (const key of keys) {
    const name = key === "lastUpdateTimeUtc" ? "lastUpdateDateTimeUtc" : key
    expect(Object.keys(action), key).toContain(name)
    const value = fixture[key]
    if (key === "commands") continue
    expect(action[name as keyof MachineAction.MachineAction], key).toStrictEqual(value === null ? undefined : value)
  }
}

describe("MachineAction.decode on Microsoft's example answers", () => {
  it("get machine action: keeps every field", () => {
    const fixture = JSON.parse(GET_MACHINE_ACTION) as Json
    const action = decoded(fixture)
    expectNothingLost(fixture, action)
    expect(action).toStrictEqual({
      id: "5382f7ea-7557-4ab7-9782-d50480024a4e",
      status: "Succeeded",
      machineId: "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378",
      type: "Isolate",
      commands: [],
      title: undefined,
      scope: "Selective",
      requestor: "Analyst@TestPrd.onmicrosoft.com",
      requestorComment: "test for docs",
      requestSource: undefined,
      externalId: undefined,
      computerDnsName: "desktop-test",
      creationDateTimeUtc: "2019-01-02T14:39:38.2262283Z",
      lastUpdateDateTimeUtc: "2019-01-02T14:40:44.6596267Z",
      cancellationRequestor: undefined,
      cancellationComment: undefined,
      cancellationDateTimeUtc: undefined,
      errorHResult: undefined,
      relatedFileInfo: undefined,
      troubleshootInfo: undefined
    })
  })

  it("run live response: keeps every field and each command's times, status, errors and params", () => {
    const fixture = JSON.parse(RUN_LIVE_RESPONSE) as Json
    const action = decoded(fixture)
    expectNothingLost(fixture, action)
    expect(action.errorHResult).toBe(0)
    expect(action.commands).toStrictEqual([
      {
        index: 0,
        startTime: undefined,
        endTime: undefined,
        commandStatus: "Created",
        errors: [],
        command: {
          type: "RunScript",
          params: [{ key: "ScriptName", value: "minidump.ps1" }, { key: "Args", value: "OfficeClickToRun" }]
        }
      },
      {
        index: 1,
        startTime: undefined,
        endTime: undefined,
        commandStatus: "Created",
        errors: [],
        command: { type: "GetFile", params: [{ key: "Path", value: "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip" }] }
      }
    ])
  })

  it("list machine actions: every item of value decodes, lastUpdateTimeUtc is read as lastUpdateDateTimeUtc", () => {
    const fixture = JSON.parse(LIST_MACHINE_ACTIONS) as { value: ReadonlyArray<Json> }
    expect(fixture.value).toHaveLength(3)
    const actions = fixture.value.map(decoded)
    fixture.value.forEach((item, i) => expectNothingLost(item, actions[i]!))
    expect(actions.map((a) => a.lastUpdateDateTimeUtc)).toStrictEqual([
      "2018-12-04T12:45:25.4049122Z",
      "2018-12-04T12:18:57.5511934Z",
      "2018-12-04T12:16:14.2899973Z"
    ])
    expect(actions.map((a) => a.scope)).toStrictEqual([undefined, "Full", undefined])
    expect(actions[2]!.relatedFileInfo).toStrictEqual({
      fileIdentifier: "a0c659857ccbe457fdaf5fe21d54efdcbf6f6508",
      fileIdentifierType: "Sha1"
    })
  })

  it("the same answers decode through the public mod.ts export and its schema", () => {
    const fixture = JSON.parse(RUN_LIVE_RESPONSE) as unknown
    const viaSchema: Public.MachineAction = Schema.decodeUnknownSync(Public.schema)(fixture)
    expect(Either.getOrThrow(Public.decode(fixture))).toStrictEqual(viaSchema)
    expect(Public.isFinal(viaSchema.status)).toBe(false)
  })
})

describe("MachineAction.decode tolerance", () => {
  /** A constructed answer (no Microsoft page shows these keys with values): a live response cancelled while its command ran. */
  const CANCELLED: Json = {
    id: "988cc94e-7a8f-4b28-ab65-54970c5d5018",
    type: "LiveResponse",
    title: "Live response",
    scope: null,
    requestor: "automation@contoso.com",
    requestorComment: "collect a dump",
    requestSource: "PublicApi",
    externalId: "ticket-4711",
    status: "Canceled",
    machineId: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    computerDnsName: "desktop-test",
    creationDateTimeUtc: "2024-01-02T13:39:46.7738206Z",
    lastUpdateDateTimeUtc: "2024-01-02T13:41:02.12Z",
    cancellationRequestor: "analyst@contoso.com",
    cancellationComment: "Machine action was canceled by automation",
    cancellationDateTimeUtc: "2024-01-02T13:41:02.12Z",
    errorHResult: -2147467260,
    relatedFileInfo: { fileIdentifier: "abc", fileIdentifierType: "Sha256" },
    troubleshootInfo: { any: ["shape", 1] },
    commands: [{
      index: 0,
      startTime: "2024-01-02T13:40:00Z",
      endTime: "2024-01-02T13:41:02Z",
      commandStatus: "Failed",
      errors: ["Command was cancelled", { code: 7 }],
      command: { type: "RunScript", params: [{ key: "ScriptName", value: "minidump.ps1" }] }
    }]
  }

  it("reads Canceled as Cancelled and keeps the cancellation and correlation fields", () => {
    const action = decoded(CANCELLED)
    expect(action.status).toBe("Cancelled")
    expect(MachineAction.isFinal(action.status)).toBe(true)
    expect(decoded({ ...CANCELLED, status: "Cancelled" }).status).toBe("Cancelled")
    const { status: _status, ...rest } = CANCELLED
    expectNothingLost(rest, action)
    expect(action.cancellationRequestor).toBe("analyst@contoso.com")
    expect(action.troubleshootInfo).toStrictEqual({ any: ["shape", 1] })
    expect(action.commands[0]).toStrictEqual({
      index: 0,
      startTime: "2024-01-02T13:40:00Z",
      endTime: "2024-01-02T13:41:02Z",
      commandStatus: "Failed",
      errors: ["Command was cancelled", `{"code":7}`],
      command: { type: "RunScript", params: [{ key: "ScriptName", value: "minidump.ps1" }] }
    })
  })

  it("reads externalID (the resource page's spelling) as externalId", () => {
    const { externalId: _, ...withoutId } = CANCELLED
    expect(decoded({ ...withoutId, externalID: "ticket-1" }).externalId).toBe("ticket-1")
  })

  it("decodes with every optional key null, and with every optional key missing", () => {
    const nulls: Json = { id: "a", status: "Pending", commands: null }
    for (const key of OPTIONAL_KEYS) nulls[key] = null
    for (const json of [nulls, { id: "a", status: "Pending" }]) {
      const action = decoded(json)
      for (const key of OPTIONAL_KEYS) expect(action[key], key).toBeUndefined()
      expect(action.commands).toStrictEqual([])
    }
  })

  it("decodes a command whose optional keys are null or missing", () => {
    const command = { type: "GetFile" }
    const action = decoded({
      id: "a",
      status: "InProgress",
      commands: [
        { index: 0, startTime: null, endTime: null, commandStatus: null, errors: null, command: { ...command, params: null } },
        { index: 1, command }
      ]
    })
    for (const c of action.commands) {
      expect(c).toStrictEqual({
        index: c.index,
        startTime: undefined,
        endTime: undefined,
        commandStatus: "Unknown",
        errors: [],
        command: { type: "GetFile", params: [] }
      })
    }
  })

  it("ignores unknown extra keys, at the top and inside commands and relatedFileInfo", () => {
    const action = decoded({
      ...CANCELLED,
      "@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions/$entity",
      somethingNew: { nested: true },
      relatedFileInfo: { fileIdentifier: "abc", fileIdentifierType: "Md5", extra: 1 },
      commands: [{ index: 0, command: { type: "RunScript", params: [], extra: 2 }, extra: 3 }]
    })
    expect(action).not.toHaveProperty("somethingNew")
    expect(action).not.toHaveProperty("@odata.context")
    expect(action.relatedFileInfo).toStrictEqual({ fileIdentifier: "abc", fileIdentifierType: "Md5" })
    expect(action.commands[0]!.command).toStrictEqual({ type: "RunScript", params: [] })
  })

  it("keeps unusual date strings as sent rather than failing", () => {
    const action = decoded({ id: "a", status: "Succeeded", creationDateTimeUtc: "02/01/2024 13:39", lastUpdateDateTimeUtc: "" })
    expect(action.creationDateTimeUtc).toBe("02/01/2024 13:39")
    expect(action.lastUpdateDateTimeUtc).toBe("")
  })

  it("accepts the machine actions the simulator sends (title and command times null while pending)", () => {
    // The shape of src/testing/DefenderSimulator.ts's actionJson, copied rather than imported so this file tests the decoder alone.
    const action = decoded({
      "@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions/$entity",
      id: "sim-1",
      type: "LiveResponse",
      title: null,
      requestor: "simulator@contoso.example",
      requestorComment: "comment",
      status: "Pending",
      machineId: "m1",
      computerDnsName: "m1.contoso.example",
      creationDateTimeUtc: "2024-01-01T00:00:00.000Z",
      lastUpdateDateTimeUtc: "2024-01-01T00:00:00.000Z",
      commands: [{
        index: 0,
        startTime: null,
        endTime: null,
        commandStatus: "Created",
        errors: [],
        command: { type: "RunScript", params: [{ key: "ScriptName", value: "a.ps1" }] }
      }]
    })
    expect(action).toMatchObject({ id: "sim-1", status: "Pending", title: undefined, requestor: "simulator@contoso.example" })
    expect(action.commands[0]!.startTime).toBeUndefined()
  })

  it("answers a Left that names the field when id is missing, the status unknown or a field of the wrong type", () => {
    expect(failure({ status: "Pending" })).toBe("id: is missing")
    expect(failure({ id: 42, status: "Pending" })).toMatch(/^id: Expected string, actual 42/)
    expect(failure({ id: "a", status: "Exploded" })).toBe(
      `status: Expected Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled or Canceled, actual "Exploded"`
    )
    expect(failure({ id: "a" })).toBe("status: is missing")
    expect(failure({ id: "a", status: "Pending", commands: [{ index: "0", command: { type: "RunScript" } }] })).toMatch(
      /^commands\.0\.index: Expected number/
    )
    expect(failure({ id: "a", status: "Pending", commands: [{ index: 0, command: { type: "RunScript", params: [{ key: 1 }] } }] }))
      .toMatch(/^commands\.0\.command\.params\.0\.key: Expected string/)
    expect(failure({ id: "a", status: "Pending", commands: [{ index: 0 }] })).toBe("commands.0.command: is missing")
    expect(failure("nope")).toMatch(/actual "nope"/)
    expect(failure(null)).toMatch(/actual null/)
  })

  it("reads an informational field of an unexpected type as undefined, keeping the rest", () => {
    const action = decoded({
      id: "a",
      status: "Failed",
      requestor: "analyst@contoso.example",
      errorHResult: "0x80070005",
      title: 7,
      relatedFileInfo: { fileIdentifier: 1, fileIdentifierType: "Sha1" },
      commands: [{ index: 0, startTime: 12, endTime: "2021-02-04T15:36:52Z", command: { type: "RunScript", params: [] } }]
    })
    expect(action).toMatchObject({
      id: "a",
      status: "Failed",
      requestor: "analyst@contoso.example",
      errorHResult: undefined,
      title: undefined,
      relatedFileInfo: { fileIdentifier: undefined, fileIdentifierType: "Sha1" }
    })
    expect(action.commands[0]).toMatchObject({ index: 0, startTime: undefined, endTime: "2021-02-04T15:36:52Z" })
    // The schema itself stays exact: it is the decoder that forgives.
    expect(Either.isLeft(Schema.decodeUnknownEither(MachineAction.schema)({ id: "a", status: "Failed", errorHResult: "0" })))
      .toBe(true)
  })

  it("keeps a Left short even for a huge wrong value", () => {
    expect(failure({ id: "a", status: "x".repeat(10_000) }).length).toBeLessThanOrEqual(300)
  })
})

describe("MachineAction.schema", () => {
  it("encodes a decoded action back without its undefined keys, and decodes that to the same action", () => {
    const action = decoded(JSON.parse(GET_MACHINE_ACTION))
    const json = Schema.encodeSync(MachineAction.schema)(action)
    expect(json).toStrictEqual({
      id: "5382f7ea-7557-4ab7-9782-d50480024a4e",
      status: "Succeeded",
      machineId: "7b1f4967d9728e5aa3c06a9e617a22a4a5a17378",
      type: "Isolate",
      commands: [],
      scope: "Selective",
      requestor: "Analyst@TestPrd.onmicrosoft.com",
      requestorComment: "test for docs",
      computerDnsName: "desktop-test",
      creationDateTimeUtc: "2019-01-02T14:39:38.2262283Z",
      lastUpdateDateTimeUtc: "2019-01-02T14:40:44.6596267Z"
    })
    expect(decoded(json)).toStrictEqual(action)
  })
})
