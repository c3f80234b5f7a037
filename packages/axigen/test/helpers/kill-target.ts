import { axigenAccountConnector, axigenDomainConnector } from '../../src/index.ts'

/**
 * The contract suite's kill children run this: the connector the test names, against the simulator that
 * lives in the test's process (its address and TLS trust travel in each service's server record).
 */
export function connector(params: unknown) {
  return (params as { product: 'domain' | 'account' }).product === 'domain'
    ? axigenDomainConnector
    : axigenAccountConnector
}
