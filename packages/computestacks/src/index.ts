/** The TLS options every panelkit REST client takes (`ca`, `fingerprint`, `insecure`). */
export type { TlsOptions } from '@panelkit/core/http'
export {
  API_VERSIONS,
  type ApiVersionStatus,
  acceptHeader,
  apiVersionStatus,
  DEFAULT_API_VERSION,
  versionFromAccept,
} from './api-versions.ts'
export {
  type BasicAuthOptions,
  basicHeader,
  type ComputeStacksAuth,
  createOAuth2TokenCache,
  type OAuth2Options,
  type OAuth2TokenCache,
} from './auth.ts'
export {
  type ComputeStacksClient,
  type ComputeStacksClientOptions,
  createComputeStacksClient,
  type LoginUrlOptions,
} from './client.ts'
export {
  type ComputeStacksAccountSettings,
  computeStacksAccountConnector,
  computestacksAccountConnector,
  loadUserGroupChoices,
} from './connector/account.ts'
export { addDecimals, DecimalSchema, toDecimalString } from './decimal.ts'
export type { ListOptions } from './endpoints/users.ts'
export { describeSelector, type UserSelector } from './endpoints/users.ts'
export type { HttpMethod } from './http.ts'
export {
  type LinkRelations,
  type PageInfo,
  pageInfo,
  parseLinkHeader,
  SERVER_DEFAULT_PER_PAGE,
} from './pagination.ts'
export {
  type ApiCredential,
  type BillingPlan,
  BillingPlanSchema,
  type BillingUsage,
  BillingUsageSchema,
  type CreateUserInput,
  CreateUserInputSchema,
  type Location,
  LocationSchema,
  type ServerVersion,
  type SsoToken,
  type UpdateUserInput,
  UpdateUserInputSchema,
  type User,
  type UserGroup,
  UserGroupSchema,
  UserSchema,
  type UserServices,
  VersionSchema,
  whmcsLabels,
} from './schemas.ts'
