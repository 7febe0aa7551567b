/**
 * The login's configuration errors, for people: a missing setting names what to
 * set instead of Effect's "Expected AZURE_TENANT_ID to exist in the process context".
 *
 * @internal
 */
import { ConfigError } from "effect"

/** The paths of the settings `error` says are missing (`[]` when it says anything else as well). */
const missingPaths = (error: ConfigError.ConfigError): Array<string> | undefined => {
  switch (error._op) {
    case "MissingData":
      return [error.path.join(".")]
    case "And":
    case "Or": {
      const left = missingPaths(error.left)
      const right = missingPaths(error.right)
      return left === undefined || right === undefined ? undefined : [...new Set([...left, ...right])]
    }
    default:
      return undefined
  }
}

const list = (names: ReadonlyArray<string>): string =>
  names.length <= 1 ? (names[0] ?? "") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`

/**
 * @internal The client-secret login's `ConfigError` when settings are missing (and only then): one
 * `MissingData` at the first missing setting that names the ways to log in — the three
 * `AZURE_*` settings, `MDE_TOKEN` with a bearer token, or a certificate through
 * `DefenderAuth.layerCredential`. Any other error (an invalid value) is kept as it is.
 */
export const loginMissing = (defaultNames: boolean) => (error: ConfigError.ConfigError): ConfigError.ConfigError => {
  const missing = missingPaths(error)?.filter((path) => path !== "")
  if (missing === undefined || missing.length === 0) return error
  // With an app's own names for the settings, the environment's names would mislead.
  const ways = defaultNames
    ? "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (an app registration's client secret), " +
      "or MDE_TOKEN with a bearer token"
    : "set the tenant id, client id and client secret, or a static token"
  return ConfigError.MissingData(
    [missing[0]!],
    `no login is configured (${list(missing)} ${missing.length === 1 ? "is" : "are"} not set): ${ways}; ` +
      "for a certificate, give DefenderAuth.layerCredential a ClientCertificateCredential"
  )
}
