export { accountSettings, axigenAccountConnector, LINK_MAILBOX } from './account.ts'
export { axigenDomainConnector, domainSettings, LINK_ACTION as LINK_DOMAIN } from './domain.ts'
export { formatMarker, MARKER_ATTRIBUTE, type Marker, parseMarker } from './marker.ts'
export {
  type AxigenServerOptions,
  AxigenServerOptionsSchema,
  ClientCache,
  diagnoseConnection,
  onDomain,
} from './shared.ts'
