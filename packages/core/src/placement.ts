import { CapacityError } from './errors.ts'

/**
 * Placement across servers: which server of a group gets a new service. Fill types as WHMCS server
 * groups name them, a capacity check that explains why nothing fits, and sticky assignment — once a
 * service has a server it keeps it (a retried create must never land somewhere else).
 */

export const FillType = {
  LEAST_FULL: 'least-full',
  FILL_UNTIL_FULL: 'fill-until-full',
  ROUND_ROBIN: 'round-robin',
} as const
export type FillType = (typeof FillType)[keyof typeof FillType]

export interface PlacementServer {
  id: string
  name?: string
  /** Disabled servers take no new services (existing ones stay). */
  enabled?: boolean
  /** Most services this server may hold; no limit when absent. */
  maxAccounts?: number
}

export interface ServerGroup {
  id: string
  fillType: FillType
  servers: readonly PlacementServer[]
}

/** A connector's own look at a server: does one more service fit, and how full is it (0..1)? */
export type CapacityProbe = (
  server: PlacementServer,
) => Promise<{ fits: boolean; reason?: string; load?: number }>

export interface AssignmentStore {
  get(serviceId: string): Promise<string | undefined>
  set(serviceId: string, serverId: string): Promise<void>
  release(serviceId: string): Promise<void>
  /** Returns the round-robin cursor for the group and advances it, atomically. */
  nextCursor(groupId: string): Promise<number>
}

export class MemoryAssignmentStore implements AssignmentStore {
  private readonly assignments = new Map<string, string>()
  private readonly cursors = new Map<string, number>()
  async get(serviceId: string) {
    return this.assignments.get(serviceId)
  }
  async set(serviceId: string, serverId: string) {
    this.assignments.set(serviceId, serverId)
  }
  async release(serviceId: string) {
    this.assignments.delete(serviceId)
  }
  async nextCursor(groupId: string) {
    const value = this.cursors.get(groupId) ?? 0
    this.cursors.set(groupId, value + 1)
    return value
  }
  /** Services per server, from the assignments (a convenient `countServices`). */
  count(serverId: string): number {
    let n = 0
    for (const id of this.assignments.values()) if (id === serverId) n++
    return n
  }
}

export interface PlaceServiceOptions {
  group: ServerGroup
  serviceId: string
  assignments: AssignmentStore
  /** How many services a server holds now. */
  countServices: (serverId: string) => number | Promise<number>
  probe?: CapacityProbe
}

export interface ServerVerdict {
  serverId: string
  fits: boolean
  reason: string
  load: number
}

export type PlacementResult =
  | { ok: true; serverId: string; sticky: boolean; verdicts: ServerVerdict[] }
  | { ok: false; error: CapacityError; verdicts: ServerVerdict[] }

async function judge(
  server: PlacementServer,
  countServices: PlaceServiceOptions['countServices'],
  probe: CapacityProbe | undefined,
): Promise<ServerVerdict> {
  if (server.enabled === false) return { serverId: server.id, fits: false, reason: 'disabled', load: 1 }
  const count = await countServices(server.id)
  let load = server.maxAccounts ? count / server.maxAccounts : 0
  if (server.maxAccounts !== undefined && count >= server.maxAccounts) {
    return {
      serverId: server.id,
      fits: false,
      reason: `full: ${count} of ${server.maxAccounts} services`,
      load: 1,
    }
  }
  if (probe) {
    try {
      const verdict = await probe(server)
      if (!verdict.fits)
        return {
          serverId: server.id,
          fits: false,
          reason: verdict.reason ?? 'the capacity probe said no',
          load: 1,
        }
      if (verdict.load !== undefined) load = Math.max(load, verdict.load)
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      return { serverId: server.id, fits: false, reason: `capacity probe failed: ${message}`, load: 1 }
    }
  }
  const limit = server.maxAccounts === undefined ? 'no limit' : `limit ${server.maxAccounts}`
  return { serverId: server.id, fits: true, reason: `${count} services, ${limit}`, load }
}

export async function placeService(options: PlaceServiceOptions): Promise<PlacementResult> {
  const { group, serviceId, assignments } = options
  const existing = await assignments.get(serviceId)
  if (existing !== undefined && group.servers.some((s) => s.id === existing)) {
    return { ok: true, serverId: existing, sticky: true, verdicts: [] }
  }
  if (group.servers.length === 0) {
    const error = new CapacityError(`Nothing fits in server group ${group.id}: the group has no servers`)
    return { ok: false, error, verdicts: [] }
  }
  const verdicts = await Promise.all(group.servers.map((s) => judge(s, options.countServices, options.probe)))
  const fitting = verdicts.filter((v) => v.fits)
  if (fitting.length === 0) {
    const why = verdicts.map((v) => `${v.serverId}: ${v.reason}`).join('; ')
    const error = new CapacityError(`Nothing fits in server group ${group.id}, because ${why}`, {
      details: { group: group.id, verdicts },
    })
    return { ok: false, error, verdicts }
  }
  let chosen: ServerVerdict
  switch (group.fillType) {
    case 'fill-until-full':
      chosen = fitting[0] as ServerVerdict
      break
    case 'round-robin': {
      const cursor = await assignments.nextCursor(group.id)
      chosen = fitting[cursor % fitting.length] as ServerVerdict
      break
    }
    default:
      chosen = fitting.reduce((best, v) => (v.load < best.load ? v : best))
  }
  await assignments.set(serviceId, chosen.serverId)
  return { ok: true, serverId: chosen.serverId, sticky: false, verdicts }
}
