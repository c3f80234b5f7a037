import { runContractSuite } from '@panelkit/core/contract'
import { axigenAccountConnector } from '../../src/index.ts'
import { accountFixture, VARIANTS, variantName } from '../helpers/contract-fixtures.ts'

// The contract against the default simulator and every legal variation (plain TCP), with the ownership
// and interrupted-create cases.
for (const variation of VARIANTS) {
  runContractSuite({
    name: `axigen-account against ${variantName(variation)}`,
    connector: axigenAccountConnector,
    foreignResource: true,
    interruptions: true,
    // Real processes killed between steps: against the default simulator only (a child start per point).
    kills: variation === undefined,
    setup: accountFixture(variation),
  })
}
