/** The lifecycle contract suite (needs vitest): `import { runContractSuite } from '@panelkit/core/contract'`. */
export {
  type ContractFixture,
  type ContractSuiteOptions,
  type ForeignResourceHooks,
  type InterruptionHooks,
  type KillHooks,
  type KillOperation,
  type KillPoints,
  runContractSuite,
} from './contract-suite.ts'
