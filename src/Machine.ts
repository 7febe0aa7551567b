/**
 * Machines (devices) as the machines list (`GET /api/machines`) reports them:
 * the `Machine` type, its tolerant decoder and schema, and `$filter` helpers.
 *
 * @module
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { inList, quote } from "./internal/client/odata.ts"

/**
 * A machine (device) onboarded to Defender for Endpoint.
 *
 * Only `id` is required. Every other field may be `null`, missing, or of a type the API
 * does not document in a real answer, and is then `undefined` (`machineTags`: empty): a
 * machine list is never failed by one odd informational field. Dates (`firstSeen`,
 * `lastSeen`) are the strings the API sends (ISO 8601 in UTC), kept as sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Machine {
  /** The machine (device) id: what `runLiveResponse` takes as `machineId`. */
  readonly id: string
  /** The device's fully qualified name. */
  readonly computerDnsName: string | undefined
  /** When the device was first seen, as the API sends it. */
  readonly firstSeen: string | undefined
  /** When the device last reported, as the API sends it: offline devices have an old one. */
  readonly lastSeen: string | undefined
  /** The operating system, e.g. `Windows10`, `Windows11`, `WindowsServer2019`, `Linux`, `macOS`. */
  readonly osPlatform: string | undefined
  /** The operating system's version. */
  readonly osVersion: string | undefined
  /** The processor architecture the API reports (`osProcessor`, deprecated on the docs). */
  readonly osProcessor: string | undefined
  /** The operating system's architecture, e.g. `64-bit`. */
  readonly osArchitecture: string | undefined
  /** The operating system's build number. */
  readonly osBuild: number | undefined
  /** The operating system's release, e.g. `1901`. */
  readonly version: string | undefined
  /** The last IP address on the device's own network adapter. */
  readonly lastIpAddress: string | undefined
  /** The last IP address the device reached the internet from. */
  readonly lastExternalIpAddress: string | undefined
  /** `Active`, `Inactive`, `ImpairedCommunication`, `NoSensorData`, … (kept as a string). */
  readonly healthStatus: string | undefined
  /** `Onboarded`, `CanBeOnboarded`, `Unsupported`, `InsufficientInfo` (kept as a string). */
  readonly onboardingStatus: string | undefined
  /** The device group's id. */
  readonly rbacGroupId: number | undefined
  /** The device group's name. */
  readonly rbacGroupName: string | undefined
  /** `None`, `Informational`, `Low`, `Medium` or `High` (kept as a string). */
  readonly riskScore: string | undefined
  /** `None`, `Low`, `Medium` or `High` (kept as a string). */
  readonly exposureLevel: string | undefined
  /** `Low`, `Normal` or `High` (kept as a string). */
  readonly deviceValue: string | undefined
  /** Whether the device is joined to Entra ID. */
  readonly isAadJoined: boolean | undefined
  /** The device's Entra ID object id, when it is joined. */
  readonly aadDeviceId: string | undefined
  /** The device's tags; a tag that is not a string is left out. */
  readonly machineTags: ReadonlyArray<string>
  /** Who manages the device, e.g. `Intune`, `MDE`. */
  readonly managedBy: string | undefined
  /** The state of that management. */
  readonly managedByStatus: string | undefined
}

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)
const integer = (value: unknown): number | undefined => (Number.isSafeInteger(value) ? value as number : undefined)
const flag = (value: unknown): boolean | undefined => (typeof value === "boolean" ? value : undefined)
const tags = (value: unknown): ReadonlyArray<string> =>
  Array.isArray(value) ? value.filter((t): t is string => typeof t === "string") : []

/**
 * Decodes a machine from the API's JSON: unknown fields ignored, every field but `id`
 * read as `undefined` when it is `null`, missing or of an unexpected type. `Left` says
 * what made it no machine at all (`not an object`, `id: is missing`).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (json: unknown): Either.Either<Machine, string> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Either.left("not an object")
  const m = json as Record<string, unknown>
  if (typeof m.id !== "string" || m.id.trim() === "") {
    return Either.left(m.id === undefined || m.id === null ? "id: is missing" : "id: is not a non-empty string")
  }
  return Either.right({
    id: m.id,
    computerDnsName: text(m.computerDnsName),
    firstSeen: text(m.firstSeen),
    lastSeen: text(m.lastSeen),
    osPlatform: text(m.osPlatform),
    osVersion: text(m.osVersion),
    osProcessor: text(m.osProcessor),
    osArchitecture: text(m.osArchitecture),
    osBuild: integer(m.osBuild),
    version: text(m.version),
    lastIpAddress: text(m.lastIpAddress),
    lastExternalIpAddress: text(m.lastExternalIpAddress),
    healthStatus: text(m.healthStatus),
    onboardingStatus: text(m.onboardingStatus),
    rbacGroupId: integer(m.rbacGroupId),
    rbacGroupName: text(m.rbacGroupName),
    riskScore: text(m.riskScore),
    exposureLevel: text(m.exposureLevel),
    deviceValue: text(m.deviceValue),
    isAadJoined: flag(m.isAadJoined),
    aadDeviceId: text(m.aadDeviceId),
    machineTags: tags(m.machineTags),
    managedBy: text(m.managedBy),
    managedByStatus: text(m.managedByStatus)
  })
}

/**
 * The machine schema: decodes any JSON value with {@link decode} (so it is as tolerant),
 * and encodes a `Machine` as itself.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Machine } from "@mde/live-response"
 *
 * const machine = Schema.decodeUnknownSync(Machine.schema)({ id: "1e5bc9d7", riskScore: null, osBuild: "n/a" })
 * // machine.riskScore === undefined, machine.osBuild === undefined, machine.machineTags: []
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.Schema<Machine, unknown> = Schema.transformOrFail(
  Schema.Unknown,
  Schema.declare((u: unknown): u is Machine => Either.isRight(decode(u))),
  {
    strict: true,
    decode: (json, _, ast) =>
      Either.match(decode(json), {
        onLeft: (detail) => ParseResult.fail(new ParseResult.Type(ast, json, detail)),
        onRight: ParseResult.succeed
      }),
    encode: ParseResult.succeed
  }
)

/**
 * The `$filter` of the machines that carry `tag`: `machineTags/any(t: t eq 'prod')`,
 * the tag quoted as OData quotes (a `'` doubled).
 *
 * @since 0.1.0
 * @category filters
 */
export const filterByTag = (tag: string): string => `machineTags/any(t: t eq ${quote(tag)})`

/**
 * The `$filter` of the machines with these ids: `id in ('a','b')`, each id quoted as
 * OData quotes. Keep a list to about 100 ids per call: a long filter makes a long URL.
 *
 * @since 0.1.0
 * @category filters
 */
export const filterByIds = (ids: readonly [string, ...Array<string>]): string => inList("id", ids)
