/**
 * Where the protocol notes mark a fact as unknown or inferred, the simulator makes a choice. Every such
 * choice lives here, named, with its default, so a test can flip it and the README can list it.
 */
export interface SimulatorBehaviour {
  /**
   * How many times a duplicate email's "Email has already been taken" appears in the 422 (the model and
   * Devise both declare a uniqueness check; not verified at runtime). Default 2.
   */
  duplicateEmailMessages: number
  /** `run_rate` of a user without active subscriptions: the JSON number 0 (inferred) or the string "0.0". Default `number`. */
  runRateWithoutSubscriptions: 'number' | 'string'
  /** Send `Retry-After` on 429 as well as the `RateLimit-*` headers (Rack::Attack's custom responder does not). Default false. */
  retryAfterOn429: boolean
  /** Lifetime of OAuth2 access tokens in seconds (Doorkeeper's default, probably 2 h). Default 7200. */
  oauthTokenLifetimeSeconds: number
  /** Status and body for a PATCH without the `user` root (Rails' exceptions app; body not determined). Default 400 with `{"status":400,"error":"Bad Request"}`. */
  missingUserRootStatus: number
  /** Credentials of suspended users still authenticate (the lookup ignores `active`). Default true. */
  suspendedCredentialsWork: boolean
  /** Whether `GET /api/version` requires authentication like every other API action. Default true. */
  versionNeedsAuth: boolean
}

export const DEFAULT_BEHAVIOUR: Readonly<SimulatorBehaviour> = Object.freeze({
  duplicateEmailMessages: 2,
  runRateWithoutSubscriptions: 'number',
  retryAfterOn429: false,
  oauthTokenLifetimeSeconds: 7200,
  missingUserRootStatus: 400,
  suspendedCredentialsWork: true,
  versionNeedsAuth: true,
})
