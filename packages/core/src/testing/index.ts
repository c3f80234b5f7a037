/**
 * Test helpers that need no test runner: the TLS certificate generator and the in-memory example panel.
 * The contract suite, which needs vitest, is at `@panelkit/core/contract`.
 */
export { generateTestCertificate, type TestCertificate } from './certificates.ts'
export {
  type MemoryAccount,
  MemoryPanel,
  type MemoryPanelOptions,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from './memory-panel.ts'
