/**
 * The list endpoints of machines and machine actions
 * (`GET /api/machines`, `GET /api/machineactions`), paged by `paging.ts`.
 *
 * @internal
 */
import type { Stream } from "effect"
import type { ListOptions } from "../../DefenderClient.ts"
import type { DefenderError } from "../../DefenderError.ts"
import * as Machine from "../../Machine.ts"
import * as MachineAction from "../../MachineAction.ts"
import type { ClientContext } from "./context.ts"
import { type PagedList, pagedList } from "./paging.ts"

/** A client method over one paged list endpoint. */
type Lister<A> = (ctx: ClientContext) => (options?: ListOptions) => Stream.Stream<A, DefenderError>

const lister = <A>(list: PagedList<A>): Lister<A> => (ctx) => (options) => pagedList(ctx, list, options)

/** @internal `DefenderClient.listMachines`. */
export const listMachines: Lister<Machine.Machine> = lister({
  span: "DefenderClient.listMachines",
  path: "/api/machines",
  resource: "the machines list",
  what: "a machine",
  decode: Machine.decode
})

/** @internal `DefenderClient.listMachineActions`. */
export const listMachineActions: Lister<MachineAction.MachineAction> = lister({
  span: "DefenderClient.listMachineActions",
  path: "/api/machineactions",
  resource: "the machine actions list",
  what: "a machine action",
  decode: MachineAction.decode
})
