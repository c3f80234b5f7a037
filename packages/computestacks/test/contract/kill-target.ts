import { computeStacksAccountConnector } from '../../src/index.ts'

/**
 * The contract suite's kill children run this: the account connector against the simulator that lives
 * in the test's process (its address, API key and CA travel in each service's server record).
 */
export function connector() {
  return computeStacksAccountConnector
}
