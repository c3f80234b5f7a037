import { runContractSuite } from '@panelkit/core/contract'
import { axigenDomainConnector } from '../../src/index.ts'
import { domainFixture, VARIANTS, variantName } from '../helpers/contract-fixtures.ts'

// The contract against the default simulator (implicit TLS verified with a CA) and against every legal
// variation a real server may show (plain TCP), with the ownership and interrupted-create cases.
for (const variation of VARIANTS) {
  runContractSuite({
    name: `axigen-domain against ${variantName(variation)}`,
    connector: axigenDomainConnector,
    foreignResource: true,
    interruptions: true,
    // Real processes killed between steps: against the default simulator only (a child start per point).
    kills: variation === undefined,
    setup: domainFixture(variation),
  })
}
