export {
  type AxigenClient,
  type AxigenClientOptions,
  AxigenClientOptionsSchema,
  createAxigenClient,
  DEFAULT_PORT,
  DEFAULT_SECURE_PORT,
  type RunOptions,
} from './client.ts'
export {
  type AccountChanges,
  type AccountDetails,
  type AccountLimits,
  accountCommands,
  accountCommandsFor,
  type ContactInfo,
  type NewAccount,
  type RegistryInfo,
} from './commands/accounts.ts'
export { classCommands, groupCommands, type ListMember, mailingListCommands } from './commands/collections.ts'
export {
  type AccountQuotas,
  type CreateDomainInput,
  type DomainAdminLimits,
  type DomainInfo,
  type DomainListEntry,
  domainCommands,
  domainCommandsFor,
  type StorageLocation,
  storageUri,
} from './commands/domains.ts'
export { type CliExecutor, type CliScript, hinted, step } from './commands/script.ts'
export { serverCommands } from './commands/server.ts'
export {
  type AxigenServerOptions,
  AxigenServerOptionsSchema,
  accountSettings,
  axigenAccountConnector,
  axigenDomainConnector,
  ClientCache,
  diagnoseConnection,
  domainSettings,
  formatMarker,
  LINK_DOMAIN,
  LINK_MAILBOX,
  MARKER_ATTRIBUTE,
  type Marker,
  parseMarker,
} from './connector/index.ts'
export {
  type AxigenDialect,
  type AxigenDialectInput,
  AxigenDialectSchema,
  DEFAULT_DIALECT,
} from './dialect.ts'
export { type PoolOptions, SessionPool } from './pool.ts'
export {
  assertSafe,
  type CliList,
  type CliToken,
  type CliValue,
  CommandSyntaxError,
  CRLF,
  type EncodedCommand,
  encodeCommand,
  encodePasswordLine,
  type FramerOptions,
  formatPrompt,
  list,
  type ParsedCommand,
  type ParsedToken,
  type Prompt,
  parseCommand,
  parsePrompt,
  parseShow,
  parseStatusLine,
  parseTable,
  parseVersion,
  quote,
  type Reply,
  ReplyFramer,
  type ShowOutput,
  type StatusLine,
  secret,
  type Table,
  type TableLayout,
  tokenize,
  type VersionInfo,
  value,
} from './protocol/index.ts'
export { CliSession, type ScriptStep, type SessionOptions } from './session/session.ts'
export {
  classifySocketError,
  normaliseFingerprint,
  type SocketTransportOptions,
  socketTransportFactory,
} from './transport/socket.ts'
export type { Transport, TransportFactory } from './transport/transport.ts'
