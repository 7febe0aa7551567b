/**
 * Where the Defender API, the Entra ID login host and the token scope live,
 * for each Microsoft cloud, and how to pick one from the environment.
 *
 * @example
 * ```ts
 * import { DefenderCloud } from "@mde/live-response"
 *
 * const eu = DefenderCloud.geo("eu")          // https://eu.api.security.microsoft.com
 * const gov = DefenderCloud.gccHigh           // login.microsoftonline.us
 * ```
 *
 * @module
 * @since 0.1.0
 */
import { Config, ConfigError, Either, type Option } from "effect"
import { checkSecureUrl } from "./internal/url.ts"

/**
 * One Microsoft cloud: the API base URL, the Entra ID login host and the token scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface DefenderCloud {
  /** A short name for logs and error messages, e.g. `commercial`, `eu`, `gcc-high`. */
  readonly name: string
  /** The API base, without a trailing slash, e.g. `https://api.security.microsoft.com`. */
  readonly apiBaseUrl: string
  /** The Entra ID login host, e.g. `https://login.microsoftonline.com`. */
  readonly authorityHost: string
  /** The OAuth2 scope of the client-credentials request. */
  readonly scope: string
}

const COMMERCIAL_SCOPE = "https://api.securitycenter.microsoft.com/.default"
const PUBLIC_LOGIN = "https://login.microsoftonline.com"

/**
 * The commercial cloud (the default).
 *
 * @since 0.1.0
 * @category clouds
 */
export const commercial: DefenderCloud = {
  name: "commercial",
  apiBaseUrl: "https://api.security.microsoft.com",
  authorityHost: PUBLIC_LOGIN,
  scope: COMMERCIAL_SCOPE
}

/**
 * The geo regions that have their own, closer API host.
 *
 * @since 0.1.0
 * @category models
 */
export type GeoRegion = "us" | "eu" | "uk" | "au" | "swa" | "ina" | "aea"

const GEO_REGIONS: ReadonlyArray<GeoRegion> = ["us", "eu", "uk", "au", "swa", "ina", "aea"]

/**
 * The commercial cloud served from a geo host such as `https://eu.api.security.microsoft.com`.
 *
 * @since 0.1.0
 * @category clouds
 */
export const geo = (region: GeoRegion): DefenderCloud => ({
  name: region,
  apiBaseUrl: `https://${region}.api.security.microsoft.com`,
  authorityHost: PUBLIC_LOGIN,
  scope: COMMERCIAL_SCOPE
})

/**
 * US Government Community Cloud (GCC).
 *
 * @since 0.1.0
 * @category clouds
 */
export const gcc: DefenderCloud = {
  name: "gcc",
  apiBaseUrl: "https://api-gcc.securitycenter.microsoft.us",
  authorityHost: PUBLIC_LOGIN,
  scope: "https://api-gcc.securitycenter.microsoft.us/.default"
}

/**
 * US Government GCC High.
 *
 * @since 0.1.0
 * @category clouds
 */
export const gccHigh: DefenderCloud = {
  name: "gcc-high",
  apiBaseUrl: "https://api-gov.securitycenter.microsoft.us",
  authorityHost: "https://login.microsoftonline.us",
  scope: "https://api-gov.securitycenter.microsoft.us/.default"
}

/**
 * US Department of Defense (same hosts as GCC High).
 *
 * @since 0.1.0
 * @category clouds
 */
export const dod: DefenderCloud = { ...gccHigh, name: "dod" }

/**
 * Looks a cloud up by the name `MDE_CLOUD` takes: `commercial`, a geo region
 * (`us`, `eu`, `uk`, `au`, `swa`, `ina`, `aea`), `gcc`, `gcc-high` or `dod`.
 *
 * @since 0.1.0
 * @category clouds
 */
export const byName = (name: string): Either.Either<DefenderCloud, string> => {
  const key = name.trim().toLowerCase()
  if (key === "" || key === "commercial") return Either.right(commercial)
  if (key === "gcc") return Either.right(gcc)
  if (key === "gcc-high" || key === "gcchigh") return Either.right(gccHigh)
  if (key === "dod") return Either.right(dod)
  const region = GEO_REGIONS.find((r) => r === key)
  if (region !== undefined) return Either.right(geo(region))
  return Either.left(
    `unknown cloud "${name}": use commercial, ${GEO_REGIONS.join(", ")}, gcc, gcc-high or dod`
  )
}

/**
 * Checks that a base URL is https (or http on a loopback host: the simulator
 * and tests) and returns it without a trailing slash.
 *
 * @since 0.1.0
 * @category utils
 */
export const validateBaseUrl = (url: string): Either.Either<string, string> =>
  checkSecureUrl(url).pipe(
    Either.mapLeft((reason) =>
      reason === "InsecureScheme"
        ? `${url} must use https (plain http only for 127.0.0.1, localhost or ::1)`
        : `${url} is not a valid URL`
    ),
    Either.map((u) => u.origin + u.pathname.replace(/\/+$/, ""))
  )

/**
 * Overrides applied on top of a named cloud.
 *
 * @since 0.1.0
 * @category models
 */
export interface Overrides {
  /** Another API base URL (https, or http on loopback). */
  readonly apiBaseUrl?: string | undefined
  /** Another Entra ID login host. */
  readonly authorityHost?: string | undefined
  /** Another token scope. */
  readonly scope?: string | undefined
}

/**
 * Applies overrides to a cloud, validating every URL.
 *
 * @since 0.1.0
 * @category utils
 */
export const withOverrides = (
  cloud: DefenderCloud,
  overrides: Overrides
): Either.Either<DefenderCloud, string> =>
  Either.gen(function*() {
    const apiBaseUrl = yield* validateBaseUrl(overrides.apiBaseUrl ?? cloud.apiBaseUrl)
    const authorityHost = yield* validateBaseUrl(overrides.authorityHost ?? cloud.authorityHost)
    const scope = overrides.scope?.trim() || cloud.scope
    return { name: cloud.name, apiBaseUrl, authorityHost, scope }
  })

/**
 * Checks a cloud built in code as configuration is checked: its API base URL and login
 * host must be https (plain http only on loopback). The client and the login refuse a
 * cloud that fails this before any token or secret is sent.
 *
 * @since 0.1.0
 * @category utils
 */
export const validate = (cloud: DefenderCloud): Either.Either<DefenderCloud, string> => withOverrides(cloud, {})

/**
 * Reads the cloud from the environment: `MDE_CLOUD` (default `commercial`),
 * then the overrides `MDE_API_URL`, `AZURE_AUTHORITY_HOST` and `MDE_SCOPE`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<DefenderCloud> = Config.all({
  name: Config.string("MDE_CLOUD").pipe(Config.withDefault("commercial")),
  apiBaseUrl: Config.option(Config.nonEmptyString("MDE_API_URL")),
  authorityHost: Config.option(Config.nonEmptyString("AZURE_AUTHORITY_HOST")),
  scope: Config.option(Config.nonEmptyString("MDE_SCOPE"))
}).pipe(
  Config.mapOrFail(({ apiBaseUrl, authorityHost, name, scope }) => {
    // Each error names the variable it comes from.
    const at = (variable: string) => (message: string) => ConfigError.InvalidData([variable], message)
    const override = (variable: string, value: Option.Option<string>) =>
      value._tag === "Some" ? Either.mapLeft(validateBaseUrl(value.value), at(variable)) : Either.right(undefined)
    return Either.gen(function*() {
      const cloud = yield* Either.mapLeft(byName(name), at("MDE_CLOUD"))
      return yield* Either.mapLeft(
        withOverrides(cloud, {
          apiBaseUrl: yield* override("MDE_API_URL", apiBaseUrl),
          authorityHost: yield* override("AZURE_AUTHORITY_HOST", authorityHost),
          scope: scope._tag === "Some" ? scope.value : undefined
        }),
        at("MDE_CLOUD")
      )
    })
  })
)
