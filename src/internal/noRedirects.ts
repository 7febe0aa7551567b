/**
 * Tells the fetch client not to follow redirects for one request (other
 * `HttpClient`s never follow): the caller sees the 3xx and refuses it.
 *
 * A redirect could lead a download (and its SAS) past the allow-list, an API call
 * to another origin or down to plain http (fetch drops the token there, but would
 * then trust whatever that server answers), or a token request — with the client
 * secret in its body — to another host (a 307/308 re-sends the body).
 *
 * The caller's own `FetchHttpClient.RequestInit` (provided around the program) is
 * kept; one given to the fetch layer itself is out of reach from here and is
 * replaced for these requests.
 *
 * @internal
 */
import { FetchHttpClient } from "@effect/platform"
import { Effect, Option } from "effect"

export const noRedirects = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(FetchHttpClient.RequestInit), (init) =>
    Effect.provideService(self, FetchHttpClient.RequestInit, {
      ...Option.getOrElse(init, () => ({})),
      redirect: "manual"
    }))
