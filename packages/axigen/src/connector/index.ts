export { accountSettings, axigenAccountConnector } from './account.ts'
export { axigenDomainConnector, domainSettings } from './domain.ts'
export { formatMarker, MARKER_ATTRIBUTE, type Marker, parseMarker } from './marker.ts'
export {
  type AxigenServerOptions,
  AxigenServerOptionsSchema,
  ClientCache,
  diagnoseConnection,
} from './shared.ts'
