/** The lifecycle contract suite (needs vitest): `import { runContractSuite } from '@panelkit/core/contract'`. */
export {
  type ContractFixture,
  type ContractSuiteOptions,
  type ForeignResourceHooks,
  type InterruptionHooks,
  type KillHooks,
  runContractSuite,
} from './contract-suite.ts'
