/**
 * The `DefenderAuth` service: bearer tokens for the Defender API, cached and
 * refreshed before they expire, from a client secret, a static token, or any
 * `@azure/identity`-style credential.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { DefenderAuth } from "@mde/live-response"
 *
 * const auth = DefenderAuth.layerClientSecret({
 *   tenantId: "contoso.onmicrosoft.com",
 *   clientId: "00000000-0000-0000-0000-000000000000",
 *   clientSecret: Redacted.make(process.env.AZURE_CLIENT_SECRET!)
 * }) // needs HttpClient.HttpClient, e.g. FetchHttpClient.layer
 * ```
 *
 * @module
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Clock, Config, type ConfigError, Context, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import * as DefenderCloud from "./DefenderCloud.ts"
import { AuthenticationError } from "./DefenderError.ts"
import * as cache from "./internal/auth/cache.ts"
import { fromCredentialError } from "./internal/auth/credentialError.ts"
import { loginMissing } from "./internal/auth/config.ts"
import * as tokenRequest from "./internal/auth/tokenRequest.ts"

/**
 * Yields bearer tokens for the Defender API.
 *
 * @since 0.1.0
 * @category models
 */
export interface DefenderAuth {
  /** A valid bearer token, from the cache when it has more than the refresh margin left. */
  readonly token: Effect.Effect<Redacted.Redacted<string>, AuthenticationError>
  /**
   * Drops `token` from the cache (after the API answered 401 with it), so the
   * next `token` asks for a new one; a token that was already replaced is left
   * alone. Answers whether a different token may now be had (`false` for a static token).
   */
  readonly invalidate: (token: Redacted.Redacted<string>) => Effect.Effect<boolean>
}

/**
 * The `DefenderAuth` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const DefenderAuth: Context.Tag<DefenderAuth, DefenderAuth> = Context.GenericTag<DefenderAuth>(
  "mde-live-response/DefenderAuth"
)

/**
 * A freshly issued token and when it expires (epoch milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface IssuedToken {
  /** The bearer token. */
  readonly token: Redacted.Redacted<string>
  /** When it expires, in epoch milliseconds. */
  readonly expiresAt: number
  /**
   * When to start refreshing it, in epoch milliseconds (the token answer's `refresh_in`);
   * when absent, or later than the refresh margin, the margin decides.
   */
  readonly refreshAt?: number | undefined
}

/**
 * How long before expiry a cached token is replaced: 5 minutes.
 *
 * @since 0.1.0
 * @category constants
 */
export const REFRESH_MARGIN: Duration.Duration = Duration.minutes(5)

/**
 * How long one token request may take before it fails as `TokenEndpointUnreachable`: 30 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const TOKEN_REQUEST_TIMEOUT: Duration.Duration = tokenRequest.REQUEST_TIMEOUT

/**
 * Builds a `DefenderAuth` around a token source, with a cache and one shared request.
 * A token is handed out as it is until its refresh time (the refresh margin before its
 * expiry, or the source's own `refreshAt`); from then until it expires callers still get
 * it at once while one background refresh runs, and a failed refresh fails nobody (the
 * next is tried after a backoff). Only a caller with no valid token waits, sharing the
 * request in flight with the others — its success and its failure alike. Requests run in
 * the layer's scope, so a caller that gives up (a timeout, an interruption) does not
 * cancel one for the others.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCached = (
  issue: Effect.Effect<IssuedToken, AuthenticationError>
): Effect.Effect<DefenderAuth, never, Scope.Scope> =>
  Effect.map(cache.make(issue, Duration.toMillis(REFRESH_MARGIN)), DefenderAuth.of)

/**
 * A fixed token (for scripts that already have one, and for tests). It is never refreshed.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerToken = (token: Redacted.Redacted<string>): Layer.Layer<DefenderAuth> =>
  Layer.succeed(
    DefenderAuth,
    DefenderAuth.of({ token: Effect.succeed(token), invalidate: () => Effect.succeed(false) })
  )

// ---------------------------------------------------------------------------
// Client secret (client credentials grant)
// ---------------------------------------------------------------------------

/**
 * Options of the client-credentials login.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientSecretOptions {
  /** The directory (tenant) id or a verified domain. */
  readonly tenantId: string
  /** The application (client) id of the app registration. */
  readonly clientId: string
  /** The client secret's value. */
  readonly clientSecret: Redacted.Redacted<string>
  /** The cloud whose login host and scope to use; default commercial. */
  readonly cloud?: DefenderCloud.DefenderCloud | undefined
}

/**
 * Requests one token with the client-credentials grant. Exposed for callers
 * that build their own cache; most users want `layerClientSecret`. A 429, a 5xx,
 * no answer within `TOKEN_REQUEST_TIMEOUT` or a broken answer is tried again (3
 * attempts in all), after the endpoint's `Retry-After` when it sends one (at most
 * 30 s), else after 0.5 s and 1 s; a refusal (`AADSTS` codes) and a redirect never are.
 * The answer's `refresh_in` becomes `refreshAt`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requestClientSecretToken = (
  options: ClientSecretOptions
): Effect.Effect<IssuedToken, AuthenticationError, HttpClient.HttpClient> => tokenRequest.requestToken(options)

/**
 * Logs in with a client secret (client-credentials grant against
 * `{authorityHost}/{tenantId}/oauth2/v2.0/token` with the cloud's scope).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClientSecret = (
  options: ClientSecretOptions
): Layer.Layer<DefenderAuth, never, HttpClient.HttpClient> =>
  Layer.scoped(
    DefenderAuth,
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      return yield* makeCached(
        requestClientSecretToken(options).pipe(Effect.provideService(HttpClient.HttpClient, client))
      )
    })
  )

// ---------------------------------------------------------------------------
// @azure/identity-style credentials
// ---------------------------------------------------------------------------

/**
 * The structural shape of an `@azure/identity` `TokenCredential`
 * (`DefaultAzureCredential`, `ClientCertificateCredential`, `ManagedIdentityCredential`…).
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenCredential {
  /** Returns a token for the scopes, or `null` when there is none. */
  getToken(
    scopes: string | Array<string>,
    options?: unknown
  ): Promise<{ readonly token: string; readonly expiresOnTimestamp: number } | null>
}

/**
 * Uses any `@azure/identity`-style credential, asking it for the cloud's scope.
 * The library adds its own cache and refresh margin on top.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerCredential = (
  credential: TokenCredential,
  options?: { readonly cloud?: DefenderCloud.DefenderCloud | undefined }
): Layer.Layer<DefenderAuth> =>
  Layer.scoped(
    DefenderAuth,
    makeCached(
      Effect.tryPromise({
        try: () => credential.getToken((options?.cloud ?? DefenderCloud.commercial).scope),
        // Entra ID's refusal (AADSTS codes, trace and correlation ids) or a network failure, kept whole.
        catch: fromCredentialError
      }).pipe(
        Effect.flatMap((result) =>
          result === null || typeof result.token !== "string"
            ? Effect.fail(
              new AuthenticationError({
                reason: "CredentialFailed",
                errorCodes: [],
                description: "the credential returned no token"
              })
            )
            : Effect.map(Clock.currentTimeMillis, (now) => ({
              token: Redacted.make(result.token),
              // A credential that gives no usable expiry is asked again every 5 minutes.
              expiresAt: Number.isFinite(result.expiresOnTimestamp) && result.expiresOnTimestamp > now
                ? result.expiresOnTimestamp
                : now + 2 * Duration.toMillis(REFRESH_MARGIN)
            }))
        ),
        Effect.timeoutFail({
          duration: TOKEN_REQUEST_TIMEOUT,
          onTimeout: () =>
            new AuthenticationError({
              reason: "CredentialFailed",
              errorCodes: [],
              description: `no token within ${Duration.format(TOKEN_REQUEST_TIMEOUT)}`
            })
        }),
        Effect.withSpan("DefenderAuth.requestToken")
      )
    )
  )

// ---------------------------------------------------------------------------
// From the environment
// ---------------------------------------------------------------------------

/**
 * The `Config`s `DefenderAuth.layerConfig` reads by default: the names `@azure/identity`
 * uses (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), the cloud of
 * `DefenderCloud.config`, and `MDE_TOKEN` for a static token.
 *
 * @since 0.1.0
 * @category config
 */
export const config: {
  readonly token: Config.Config<Option.Option<Redacted.Redacted<string>>>
  readonly tenantId: Config.Config<string>
  readonly clientId: Config.Config<string>
  readonly clientSecret: Config.Config<Redacted.Redacted<string>>
  readonly cloud: Config.Config<DefenderCloud.DefenderCloud>
} = {
  token: Config.option(Config.redacted("MDE_TOKEN")),
  tenantId: Config.nonEmptyString("AZURE_TENANT_ID"),
  clientId: Config.nonEmptyString("AZURE_CLIENT_ID"),
  clientSecret: Config.redacted(Config.nonEmptyString("AZURE_CLIENT_SECRET")),
  cloud: DefenderCloud.config
}

/**
 * Where `DefenderAuth.layerConfig` reads each setting: a `Config` per setting, each
 * optional (an omitted one is read as in `config`), so an app with its own names or
 * `ConfigProvider` can use it.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { DefenderAuth } from "@mde/live-response"
 *
 * const auth = DefenderAuth.layerConfig({
 *   tenantId: Config.nonEmptyString("APP_TENANT"),
 *   clientId: Config.nonEmptyString("APP_CLIENT"),
 *   clientSecret: Config.redacted("APP_SECRET")
 * })
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export interface LayerConfigOptions {
  /** A static token; when it holds a non-empty token, no login is made. Default `MDE_TOKEN`. */
  readonly token?: Config.Config<Option.Option<Redacted.Redacted<string>>> | undefined
  /** The Entra ID tenant; default `AZURE_TENANT_ID`. */
  readonly tenantId?: Config.Config<string> | undefined
  /** The app registration's client id; default `AZURE_CLIENT_ID`. */
  readonly clientId?: Config.Config<string> | undefined
  /** The client secret's value; default `AZURE_CLIENT_SECRET`. */
  readonly clientSecret?: Config.Config<Redacted.Redacted<string>> | undefined
  /** The cloud; default `DefenderCloud.config`. */
  readonly cloud?: Config.Config<DefenderCloud.DefenderCloud> | undefined
}

/**
 * Reads the login from configuration, by default the environment with the names
 * `@azure/identity` uses: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (and
 * the cloud settings of `DefenderCloud.config`: `MDE_CLOUD`, `AZURE_AUTHORITY_HOST`,
 * `MDE_SCOPE`). When `MDE_TOKEN` is set it is used as a static token instead. Any of them
 * can be replaced with another `Config` (see `LayerConfigOptions`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  configs?: LayerConfigOptions
): Layer.Layer<DefenderAuth, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const staticToken = yield* (configs?.token ?? config.token)
      if (Option.isSome(staticToken) && Redacted.value(staticToken.value) !== "") {
        return layerToken(staticToken.value)
      }
      const login = yield* Config.all({
        tenantId: configs?.tenantId ?? config.tenantId,
        clientId: configs?.clientId ?? config.clientId,
        clientSecret: configs?.clientSecret ?? config.clientSecret
      }).pipe(
        Effect.mapError(loginMissing(
          configs?.tenantId === undefined && configs?.clientId === undefined && configs?.clientSecret === undefined &&
            configs?.token === undefined
        ))
      )
      const cloud = yield* (configs?.cloud ?? config.cloud)
      return layerClientSecret({ ...login, cloud })
    })
  )
