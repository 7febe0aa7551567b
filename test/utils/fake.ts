/**
 * A scriptable fake of the three services the library talks to (Entra ID,
 * the Defender API, blob storage), as an `HttpClient` with no sockets. Every
 * request is recorded with its TestClock time so tests can assert on what was
 * sent, not only on what came back.
 */
import { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { Clock, Effect, Layer, Redacted } from "effect"
import * as DefenderAuth from "../../src/DefenderAuth.ts"
import * as DefenderClient from "../../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../../src/DefenderRateLimiter.ts"

export const API = "https://api.security.microsoft.com"
export const LOGIN = "https://login.microsoftonline.com"
export const BLOB_HOST = "mdestore.blob.core.windows.net"
export const ACTION_ID = "988cc94e-7a8f-4b28-ab65-54970c5d5018"

/** Canary secrets: tests assert they never show up in errors, logs or spans. */
export const CANARY_SECRET = "canary-client-secret-7f3a9c"
export const CANARY_TOKEN = "canary-bearer-token-1b2e4d"
export const CANARY_SIG = "canarySig0123456789abcdefXYZ%3D"

export interface Recorded {
  readonly method: string
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly at: number
}

export type Handler = (request: Recorded) => Response | Effect.Effect<Response, "transport">

export interface Fake {
  readonly client: HttpClient.HttpClient
  readonly requests: Array<Recorded>
  readonly to: (host: string, pathIncludes?: string) => Array<Recorded>
}

export const makeFake = (handler: Handler): Fake => {
  const requests: Array<Recorded> = []
  const client = HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
      const recorded: Recorded = { method: request.method, url, headers: { ...request.headers }, body, at }
      requests.push(recorded)
      const result = handler(recorded)
      const response = yield* (Effect.isEffect(result) ? result : Effect.succeed(result)).pipe(
        Effect.mapError(() =>
          new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error("connection reset") })
        )
      )
      return HttpClientResponse.fromWeb(request, response)
    })
  )
  return {
    client,
    requests,
    to: (host, pathIncludes) =>
      requests.filter((r) => r.url.host === host && (pathIncludes === undefined || r.url.pathname.includes(pathIncludes)))
  }
}

export const json = (status: number, body: unknown, headers?: Record<string, string>): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

export const odataError = (status: number, code: string, message: string, headers?: Record<string, string>): Response =>
  json(status, { error: { code, message, target: "req-1234" } }, headers)

export const blobUrl = (name: string = "result", sig: string = CANARY_SIG, host: string = BLOB_HOST): string =>
  `https://${host}/investigation-actions-data/ID/CustomPlaybookCommandOutput/${name}?se=2021-02-04T16%3A13%3A50Z&sp=r&sv=2019-07-07&sr=b&sig=${sig}`

export const linkResponse = (url: string): Response =>
  json(200, { "@odata.context": `${API}/api/$metadata#Edm.String`, value: url })

export const storageError = (status: number, code: string, message: string): Response =>
  new Response(
    `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\nRequestId:abc\nTime:2021-02-04T16:20:00Z</Message></Error>`,
    { status, headers: { "content-type": "application/xml", "x-ms-error-code": code } }
  )

export const expiredSas = (): Response =>
  storageError(
    403,
    "AuthenticationFailed",
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. Signed expiry time [Thu, 04 Feb 2021 16:13:50 GMT] must be after signed start time. Signature not valid in the specified time frame"
  )

export const SEED_TRANSCRIPT = `{
    "script_name": "minidump.ps1",
    "exit_code": 0,
    "script_output": "Transcript started, output file is C:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\Temp\\\\PSScriptOutputs\\\\PSScript_Transcript_{TRANSCRIPT_ID}.txt
C:\\\\windows\\\\TEMP\\\\OfficeClickToRun.dmp.zip\\n51 MB\\n\\u0000\\u0000\\u0000",
    "script_error":""
}`

/** The client stack over a fake, with a static token unless `auth` is given. */
export const clientLayer = (
  fake: Fake,
  options?: {
    readonly client?: DefenderClient.Options
    readonly limits?: ReadonlyArray<DefenderRateLimiter.RateLimit>
    readonly auth?: Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient>
  }
): Layer.Layer<DefenderClient.DefenderClient> =>
  DefenderClient.layer(options?.client).pipe(
    Layer.provide(
      Layer.merge(
        options?.auth ?? DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)),
        DefenderRateLimiter.layer(options?.limits === undefined ? undefined : { limits: options.limits })
      )
    ),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, fake.client))
  )

/** One page of a list answer, with its `@odata.nextLink` when given. */
export const listAnswer = (value: ReadonlyArray<unknown>, nextLink?: string): Response =>
  json(200, {
    "@odata.context": `${API}/api/$metadata#Machines`,
    value,
    ...(nextLink === undefined ? {} : { "@odata.nextLink": nextLink })
  })

/** The response example of Microsoft's "List library files" page (`GET /api/libraryfiles`). */
export const LIBRARY_FILES_EXAMPLE: { readonly "@odata.context": string; readonly value: ReadonlyArray<Record<string, unknown>> } = {
  "@odata.context": `${API}/api/$metadata#LibraryFiles`,
  value: [
    {
      fileName: "script1.ps1",
      sha256: "6e212a0db618507c44e4ec8ee7499dfef7e5767e5f8d31144df3b96fd1145caf",
      description: null,
      creationTime: "2019-10-24T10:54:23.2009016Z",
      lastUpdatedTime: "2019-10-24T10:54:23.2009016Z",
      createdBy: "admin",
      hasParameters: true,
      parametersDescription: "test"
    },
    {
      fileName: "script.sh",
      sha256: "d0f3e3b0641dbf88ee39c822516e81a909d1d06d22341dd9b1f12aa5e5c027a2",
      description: null,
      creationTime: "2018-10-24T11:15:35.3688259Z",
      lastUpdatedTime: "2018-10-24T11:15:35.3688259Z",
      createdBy: "username",
      hasParameters: false
    },
    {
      fileName: "memdump.exe",
      sha256: "fa70b87730290c0d30fe255d1dfb65de82f96286ebfeeb1d88ed3cc831329825",
      description: "Process memory dump",
      creationTime: "2018-10-24T10:54:23.2009016Z",
      lastUpdatedTime: "2018-10-24T10:54:23.2009016Z",
      createdBy: "admin",
      hasParameters: false
    }
  ]
}
