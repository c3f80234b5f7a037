export type { AuthState, ProxmoxCredentials, TicketGrant } from './auth.ts'
export {
  type CallOptions,
  createProxmoxClient,
  type ProxmoxClient,
  type ProxmoxClientOptions,
} from './client.ts'
export * from './connector/index.ts'
export * from './encoding.ts'
export { ENDPOINTS, type EndpointName } from './endpoints/catalog.ts'
export {
  type EndpointDefinition,
  endpoint,
  type ParamSpec,
  type ParamsOf,
  type ParamType,
  pathParamNames,
  type ResultOf,
  type ReturnKind,
} from './endpoints/define.ts'
export type * from './endpoints/types.ts'
export {
  classifyPveMessage,
  isProxmoxApiError,
  isPveFailure,
  ProxmoxApiError,
  PveFailureKind,
} from './errors.ts'
// The transport is core's shared HTTP layer; its parts are at `@panelkit/core/http`.
export type { TlsOptions } from './http.ts'
export {
  dryRunUpid,
  exitStatusIsOk,
  formatUpid,
  isDryRunUpid,
  isUpid,
  parseUpid,
  TaskFailedError,
  type TaskLogLine,
  type TaskResult,
  type TaskStatus,
  type Upid,
  type WaitForTaskOptions,
  waitForTask,
} from './tasks.ts'
