export { type App, type AppOptions, createApp, whmcsFromConfig } from './app.ts'
export { type CliExtras, type CliIo, EXIT, main, runProcess } from './cli.ts'
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
  type ConfigDriftEntry,
  type ConnectorRegistration,
  type DriftEntry,
  Engine,
  type EngineEvent,
  type EngineOptions,
  productMappings,
  type ServiceChange,
  type SyncSummary,
} from './engine/engine.ts'
export { type ImportReport, importAccounts } from './engine/import.ts'
export {
  type Job,
  type JobOperation,
  JobStatus,
  listJobs,
  releaseLeases,
  retryParked,
} from './engine/jobs.ts'
export {
  getService,
  listServices,
  type ServiceRecord,
  type ServiceState,
  settingsFor,
} from './engine/services.ts'
export { type ApiServer, createApiHandler, startApiServer, tokenMatches } from './http/server.ts'
export { createLogger, type LogFormat, type Logger, type LogLevel } from './logger.ts'
export { createSecretBox, generateSecretKey, parseSecretKey, type SecretBox } from './secrets.ts'
export {
  DurableAssignmentStore,
  DurableCheckpointStore,
  DurableIpPool,
  DurableLedger,
  DurableModuleLog,
  DurableVmidReservations,
  type LedgerRow,
  Store,
  type StoreOptions,
  StoreProvisionedView,
} from './store/store.ts'
