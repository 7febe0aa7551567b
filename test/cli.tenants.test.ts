/**
 * Each tenant of a shared campaign is configured by `MDE_<NAME>_<SETTING>`: its credentials
 * only from its own names, the rest falling back to the plain settings, a budget key of its own.
 */
import { describe, expect, it } from "@effect/vitest"
import { tenantSettings } from "../cli/campaignShared.ts"

const env = {
  MDE_TOKEN: "plain-token",
  AZURE_TENANT_ID: "plain-tenant",
  AZURE_CLIENT_ID: "plain-client",
  AZURE_CLIENT_SECRET: "plain-secret",
  MDE_API_URL: "https://plain.example",
  MDE_RATE_LIMITS: "100/1m",
  MDE_REDIS_URL: "redis://127.0.0.1:6379",
  MDE_REDIS_KEY: "msp",
  MDE_CONTOSO_TENANT_ID: "contoso-tenant",
  MDE_CONTOSO_CLIENT_ID: "contoso-client",
  MDE_CONTOSO_CLIENT_SECRET: "contoso-secret",
  MDE_CONTOSO_RATE_LIMITS: "50/1m",
  MDE_NORTH_WIND_TOKEN: "northwind-token",
  MDE_NORTH_WIND_API_URL: "http://127.0.0.1:8080"
}

describe("tenantSettings", () => {
  it("maps a tenant's own settings to the library's names, the app registration's to AZURE_*", () => {
    const s = tenantSettings("contoso", env)
    expect(s.get("AZURE_TENANT_ID")).toBe("contoso-tenant")
    expect(s.get("AZURE_CLIENT_ID")).toBe("contoso-client")
    expect(s.get("AZURE_CLIENT_SECRET")).toBe("contoso-secret")
    expect(s.get("MDE_RATE_LIMITS")).toBe("50/1m")
  })

  it("never takes a credential or the API URL from the plain settings; shares the rest", () => {
    const s = tenantSettings("contoso", env)
    expect(s.has("MDE_TOKEN")).toBe(false)
    expect(s.has("MDE_API_URL")).toBe(false)
    const n = tenantSettings("north-wind", env)
    expect(n.get("MDE_TOKEN")).toBe("northwind-token")
    expect(n.get("MDE_API_URL")).toBe("http://127.0.0.1:8080")
    expect(n.has("AZURE_CLIENT_SECRET")).toBe(false)
    expect(n.has("AZURE_TENANT_ID")).toBe(false)
    expect(n.get("MDE_RATE_LIMITS")).toBe("100/1m")
    expect(n.get("MDE_REDIS_URL")).toBe("redis://127.0.0.1:6379")
  })

  it("gives each tenant a budget key of its own", () => {
    expect(tenantSettings("contoso", env).get("MDE_REDIS_KEY")).toBe("msp:contoso")
    expect(tenantSettings("north-wind", env).get("MDE_REDIS_KEY")).toBe("msp:north-wind")
    expect(tenantSettings("contoso", {}).get("MDE_REDIS_KEY")).toBe("mde-live-response:contoso")
  })
})
