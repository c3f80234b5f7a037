/** The TLS options every panelkit REST client takes (`ca`, `fingerprint`, `insecure`). */
export type { TlsOptions } from '@panelkit/core/http'
export {
  type AcceptOrderParams,
  type AddBillableItemParams,
  type AddClientParams,
  type AddCreditParams,
  type AddOrderItem,
  type AddOrderParams,
  type CallOptions,
  createWhmcsClient,
  type GetClientsParams,
  type GetClientsProductsParams,
  type GetInvoicesParams,
  type GetOrdersParams,
  type GetUsersParams,
  isNotSent,
  isWhmcsAuthFailure,
  type PageOptions,
  type PhpMap,
  resolveEndpoint,
  type UpdateClientParams,
  type UpdateClientProductParams,
  type WhmcsClient,
  type WhmcsClientOptions,
  type WhmcsParams,
} from './client.ts'
export type { WhmcsErrorDetails } from './errors.ts'
export type { WhmcsAuth } from './http.ts'
export { type FetchPage, type Page, type PaginateOptions, paginate } from './pagination.ts'
export {
  encodeForm,
  type FormValue,
  formatWhmcsDate,
  formList,
  type ParsedForm,
  PhpArray,
  parseForm,
} from './protocol/form.ts'
export {
  decodePhpArray,
  encodePhpArray,
  PhpUnserializeError,
  type PhpValue,
  phpSerialize,
  phpUnserialize,
} from './protocol/php-serialize.ts'
export * from './protocol/schemas.ts'
export {
  MoneySchema,
  normaliseMoney,
  OptionalIdSchema,
  TextSchema,
  WhmcsBoolSchema,
  WhmcsDateSchema,
  WhmcsDateTimeSchema,
  WhmcsIdSchema,
  WhmcsIntSchema,
  whmcsList,
} from './protocol/values.ts'
export { type FindPaidDepositsOptions, findPaidDeposits, type PaidDeposit } from './sync/deposits.ts'
export { type Ledger, type LedgerEntry, type LedgerState, MemoryLedger } from './sync/ledger.ts'
export {
  createReverseSync,
  fingerprintPassword,
  type LoginCheck,
  type LoginCheckReason,
  MemoryProvisionedView,
  type ReverseSync,
  type ReverseSyncOptions,
  sameId,
} from './sync/reverse-sync.ts'
export type {
  DriftEntry,
  DriftKind,
  IntentKind,
  ProductMapping,
  ProvisionedService,
  ProvisionedState,
  ProvisionedView,
  SyncCustomer,
  SyncError,
  SyncEvent,
  SyncEventKind,
  SyncIntent,
  SyncReport,
  UnreadRange,
} from './sync/types.ts'
export {
  creditDeposit,
  type DepositCredit,
  depositKey,
  type LedgerWriteResult,
  pushUsage,
  type ServiceWriteBack,
  type UsagePush,
  usageKey,
  type WriteBackResult,
  writeBackService,
} from './sync/write-back.ts'
