import type { ServiceContextInput } from '@panelkit/core'
import type { ComputeStacksSimulator, SimUser } from '../../src/testing/index.ts'

/**
 * The foreign resource of the contract case "an account tied to something else by external_id is never
 * modified": a ComputeStacks v1 customer whose `external_id` holds a WHMCS client id equal to the
 * service id, with its own email and no WHMCS label. Returns a probe that reads the account back, so a
 * test (or core's generic "foreign resource never modified" hook) can compare before and after.
 */
export function plantAccountTiedElsewhereByExternalId(
  sim: ComputeStacksSimulator,
  service: ServiceContextInput,
): { user: SimUser; snapshot: () => unknown } {
  const user = sim.addUser({
    email: `v1.client${service.serviceId}@example.com`,
    fname: 'Vera',
    lname: 'Version-One',
    externalId: String(service.serviceId),
    userGroupId: sim.defaultGroup().id,
  })
  // Everything an operation could change; the SSO token fields are the only ones a lookup never sets.
  const snapshot = () => {
    const current = sim.users.get(user.id)
    return current
      ? JSON.parse(JSON.stringify({ ...current, authToken: null, authTokenExp: null }))
      : 'deleted'
  }
  return { user, snapshot }
}

/**
 * The foreign resource of core's contract case "an existing resource not marked as ours is never
 * modified": a customer with the service's email (the account's identity on ComputeStacks) made by hand,
 * with no WHMCS label and no external_id, so nothing ties it to the service.
 */
export function plantUntiedAccountWithServiceEmail(
  sim: ComputeStacksSimulator,
  service: ServiceContextInput,
): { user: SimUser; snapshot: () => unknown } {
  const user = sim.addUser({
    email: String(service.username).toLowerCase(),
    fname: 'Hand',
    lname: 'Made',
    externalId: null,
    userGroupId: sim.defaultGroup().id,
  })
  const snapshot = () => {
    const current = sim.users.get(user.id)
    return current
      ? JSON.parse(JSON.stringify({ ...current, authToken: null, authTokenExp: null }))
      : 'deleted'
  }
  return { user, snapshot }
}
