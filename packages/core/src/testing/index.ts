/**
 * Test helpers that need no test runner: the TLS certificate generator and the in-memory example panel.
 * The contract suite, which needs vitest, is at `@panelkit/core/contract`.
 */
export { generateTestCertificate, type TestCertificate } from './certificates.ts'
export {
  FileCheckpointStore,
  type KillPlan,
  type KillPoint,
  type KillReport,
  type KillTargetModule,
  type KillTask,
  runKillChild,
} from './kill-child.ts'
export {
  type MemoryAccount,
  MemoryPanel,
  type MemoryPanelEndpoint,
  type MemoryPanelOptions,
  memoryPanelConnector,
  registerMemoryPanel,
  remoteMemoryPanel,
  serveMemoryPanel,
  unregisterMemoryPanel,
} from './memory-panel.ts'
