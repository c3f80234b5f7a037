export { generateTestCertificate, type TestCertificate } from './certificates.ts'
export { type ContractFixture, type ContractSuiteOptions, runContractSuite } from './contract-suite.ts'
export {
  type MemoryAccount,
  MemoryPanel,
  type MemoryPanelOptions,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from './memory-panel.ts'
