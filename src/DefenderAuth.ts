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
import { HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientResponse } from "@effect/platform"
import {
  Clock,
  Config,
  type ConfigError,
  Context,
  Duration,
  Effect,
  Deferred,
  Exit,
  FiberId,
  Layer,
  Option,
  Redacted,
  Schedule,
  Schema,
  type Scope
} from "effect"
import * as DefenderCloud from "./DefenderCloud.ts"
import { AuthenticationError } from "./DefenderError.ts"
import { noRedirects } from "./internal/noRedirects.ts"

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
export const TOKEN_REQUEST_TIMEOUT: Duration.Duration = Duration.seconds(30)

interface CachedToken extends IssuedToken {
  readonly refreshAt: number
}

/**
 * Builds a `DefenderAuth` around a token source: caches the token until the
 * refresh margin before its expiry, and makes concurrent callers share one
 * request — its success and its failure alike. The request runs in the
 * layer's scope, so a caller that gives up (a timeout, an interruption) does
 * not cancel it for the others.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCached = (
  issue: Effect.Effect<IssuedToken, AuthenticationError>
): Effect.Effect<DefenderAuth, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const margin = Duration.toMillis(REFRESH_MARGIN)
    let cached: CachedToken | undefined
    let inflight: Deferred.Deferred<Redacted.Redacted<string>, AuthenticationError> | undefined

    const request = Effect.gen(function*() {
      const issued = yield* issue
      const now = yield* Clock.currentTimeMillis
      // Short-lived tokens (under 10 minutes) are kept for half their life instead.
      const refreshAt = issued.expiresAt - Math.min(margin, Math.max(0, issued.expiresAt - now) / 2)
      cached = { ...issued, refreshAt }
      return issued.token
    })

    // Decided synchronously, so two callers can never both start a request; only
    // the wait is interruptible, so an inflight request is always started once announced.
    const join = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (cached !== undefined && now < cached.refreshAt) return Effect.succeed(cached.token)
        if (inflight !== undefined) return restore(Deferred.await(inflight))
        const deferred = Deferred.unsafeMake<Redacted.Redacted<string>, AuthenticationError>(FiberId.none)
        inflight = deferred
        const settle = (exit: Exit.Exit<Redacted.Redacted<string>, AuthenticationError>) => {
          if (inflight === deferred) inflight = undefined
          return Deferred.done(deferred, exit)
        }
        return request.pipe(
          Effect.onExit(settle),
          // A fiber forked here would inherit the uninterruptible region, and then no
          // timeout inside the request could cut it short.
          Effect.interruptible,
          Effect.forkIn(scope),
          Effect.zipRight(restore(Deferred.await(deferred)))
        )
      })
    )

    const invalidate = (used: Redacted.Redacted<string>) =>
      Effect.sync(() => {
        if (cached !== undefined && Redacted.value(cached.token) === Redacted.value(used)) cached = undefined
        return true
      })

    return DefenderAuth.of({ token: join, invalidate })
  })

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

const TokenResponse = Schema.Struct({
  access_token: Schema.String,
  expires_in: Schema.Union(Schema.Number, Schema.NumberFromString)
})

const TokenErrorBody = Schema.Struct({
  error: Schema.optional(Schema.String),
  error_description: Schema.optional(Schema.String),
  error_codes: Schema.optional(Schema.Array(Schema.Number)),
  trace_id: Schema.optional(Schema.String),
  correlation_id: Schema.optional(Schema.String)
})

const decodeTokenError = Schema.decodeUnknownOption(TokenErrorBody)
const decodeTokenResponse = Schema.decodeUnknownOption(TokenResponse)

const unreachable = (description: string, status?: number): AuthenticationError =>
  new AuthenticationError({
    reason: "TokenEndpointUnreachable",
    errorCodes: [],
    description,
    ...(status === undefined ? {} : { status })
  })

/**
 * Requests one token with the client-credentials grant. Exposed for callers
 * that build their own cache; most users want `layerClientSecret`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requestClientSecretToken = (
  options: ClientSecretOptions
): Effect.Effect<IssuedToken, AuthenticationError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const cloud = options.cloud ?? DefenderCloud.commercial
    const secret = Redacted.value(options.clientSecret)
    // The secret must not survive in anything we return, even if Entra ID echoes it.
    const scrub = (text: string | undefined) =>
      text === undefined || secret === "" ? text : text.split(secret).join("<redacted>")
    const url = `${cloud.authorityHost}/${encodeURIComponent(options.tenantId)}/oauth2/v2.0/token`
    const request = HttpClientRequest.post(url).pipe(
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams({
        grant_type: "client_credentials",
        client_id: options.clientId,
        client_secret: secret,
        scope: cloud.scope
      })
    )
    const response: HttpClientResponse.HttpClientResponse = yield* client.execute(request).pipe(
      Effect.mapError((e) => unreachable(`the token request could not be sent (${e.reason})`)),
      // The body holds the secret: a 307/308 would send it to wherever the redirect points.
      noRedirects
    )
    if (response.status >= 300 && response.status < 400) {
      // Not retried: a redirect is the configuration's doing, not a flaky endpoint.
      return yield* new AuthenticationError({
        reason: "TokenRequestFailed",
        status: response.status,
        errorCodes: [],
        error: "it answered with a redirect, which is never followed (the request holds the secret): check AZURE_AUTHORITY_HOST"
      })
    }
    const body = yield* response.json.pipe(Effect.option)
    if (response.status >= 200 && response.status < 300) {
      const parsed = Option.flatMap(body, decodeTokenResponse)
      if (Option.isNone(parsed)) {
        return yield* unreachable("the token endpoint's answer holds no access_token", response.status)
      }
      const expiresIn = parsed.value.expires_in
      if (!(expiresIn > 0) || !Number.isFinite(expiresIn) || parsed.value.access_token === "") {
        return yield* unreachable("the token endpoint's answer holds no usable token or expires_in", response.status)
      }
      const now = yield* Clock.currentTimeMillis
      return { token: Redacted.make(parsed.value.access_token), expiresAt: now + expiresIn * 1000 }
    }
    const error = Option.flatMap(body, decodeTokenError)
    if (response.status >= 500 || Option.isNone(error)) {
      return yield* unreachable(`the token endpoint answered HTTP ${response.status}`, response.status)
    }
    const e = error.value
    return yield* new AuthenticationError({
      reason: "TokenRequestFailed",
      status: response.status,
      errorCodes: e.error_codes ?? [],
      ...(e.error === undefined ? {} : { error: e.error }),
      ...(e.error_description === undefined ? {} : { description: scrub(e.error_description)! }),
      ...(e.trace_id === undefined ? {} : { traceId: e.trace_id }),
      ...(e.correlation_id === undefined ? {} : { correlationId: e.correlation_id })
    })
  }).pipe(
    Effect.timeoutFail({
      duration: TOKEN_REQUEST_TIMEOUT,
      onTimeout: () => unreachable(`no answer within ${Duration.format(TOKEN_REQUEST_TIMEOUT)}`)
    }),
    // A flaky token endpoint is retried twice; a refusal (wrong secret…) never is.
    Effect.retry({
      schedule: Schedule.exponential("500 millis"),
      times: 2,
      while: (e) => e.reason === "TokenEndpointUnreachable"
    }),
    Effect.withSpan("DefenderAuth.requestToken", { attributes: { "mde.tenant_id": options.tenantId } })
  )

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
        catch: (cause) =>
          new AuthenticationError({
            reason: "CredentialFailed",
            errorCodes: [],
            description: cause instanceof Error
              ? `${cause.name}: ${cause.message}`.slice(0, 300)
              : "the credential threw"
          })
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
  clientSecret: Config.redacted("AZURE_CLIENT_SECRET"),
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
      const options = yield* Config.all({
        tenantId: configs?.tenantId ?? config.tenantId,
        clientId: configs?.clientId ?? config.clientId,
        clientSecret: configs?.clientSecret ?? config.clientSecret,
        cloud: configs?.cloud ?? config.cloud
      })
      return layerClientSecret(options)
    })
  )
