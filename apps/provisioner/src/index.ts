export { type App, type AppOptions, createApp } from './app.ts'
export type {
  BillableItem,
  BillingService,
  BillingSource,
  BillingStatus,
  DesiredState,
  WriteBackFields,
} from './billing.ts'
export { desiredStateOf } from './billing.ts'
export { type CliExtras, type CliIo, main } from './cli.ts'
export {
  type Config,
  ConfigError,
  type ConfigInput,
  type ConfigIssue,
  ConfigSchema,
  type LoadedConfig,
  loadConfig,
  parseConfig,
} from './config.ts'
export { builtinConnectors, StoreIpPool, StoreVmidReservations } from './connectors.ts'
export {
  type ConnectorRegistration,
  type DriftEntry,
  Engine,
  type EngineEvent,
  type EngineOptions,
  type SyncReport,
} from './engine/engine.ts'
export { type ImportReport, importAccounts } from './engine/import.ts'
export { type Job, type JobOperation, JobStatus, listJobs, retryParked } from './engine/jobs.ts'
export { getService, listServices, planTransition, type ServiceRecord } from './engine/services.ts'
export { type ApiServer, createApiHandler, startApiServer, tokenMatches } from './http/server.ts'
export { createLogger, type Logger, type LogLevel } from './logger.ts'
export {
  DurableAssignmentStore,
  DurableCheckpointStore,
  DurableIpPool,
  DurableLedger,
  DurableModuleLog,
  DurableVmidReservations,
  Store,
  type StoreOptions,
} from './store/store.ts'
export { whmcsBilling } from './whmcs-billing.ts'
