import {
  AuthError,
  CommandError,
  ConflictError,
  HttpError,
  NotFoundError,
  type PanelkitError,
  ProtocolError,
  RateLimitedError,
  UnsupportedError,
  ValidationError,
} from '@panelkit/core'

/**
 * How WHMCS answers map onto core's errors. WHMCS's own message is always kept (in the error message
 * and in `details.whmcsMessage`) because operators search WHMCS's docs and forums by that text.
 */

export interface WhmcsErrorDetails extends Record<string, unknown> {
  action: string
  whmcsMessage: string
  status?: number
}

const NOT_FOUND = /not found|does not exist|no matching/i
const CONFLICT = /duplicate|already exists|not available for use|already in use/i
const PERMISSION = /^invalid permissions/i
const UNKNOWN_ACTION = /^invalid api action|command not found/i
const INPUT =
  /^(you must provide|you did not|invalid date format|expecting parameter|invalid (unit|invoice action)|either .* is required|.* is required$|valid country required|the email address (you )?entered (is|was) not valid)/i

/** Access-control and credential failures, which WHMCS answers with HTTP 403. */
const AUTH_403 =
  /ip banned|invalid ip|forbidden ip|access key|credentials|authentication failed|account disabled|access denied|invalid password/i

function details(action: string, whmcsMessage: string, status?: number): WhmcsErrorDetails {
  const d: WhmcsErrorDetails = { action, whmcsMessage }
  if (status !== undefined) d.status = status
  return d
}

/** An action-level error: `result: "error"` at HTTP 200 (or a 403 permission refusal). */
export function actionError(action: string, message: string, status = 200): PanelkitError {
  const text = `WHMCS ${action}: ${message}`
  const d = { details: details(action, message, status) }
  if (PERMISSION.test(message))
    return new AuthError(`${text} (give the API role this action)`, { ...d, retryable: false })
  if (UNKNOWN_ACTION.test(message)) return new UnsupportedError(text, d)
  if (NOT_FOUND.test(message)) return new NotFoundError(text, d)
  if (CONFLICT.test(message)) return new ConflictError(text, d)
  if (INPUT.test(message)) return new ValidationError(text, [{ path: action, message }], d)
  return new CommandError(text, d)
}

/** A non-200 answer. */
export function httpError(action: string, status: number, message: string, body: unknown): PanelkitError {
  if (status === 403) {
    if (PERMISSION.test(message) || UNKNOWN_ACTION.test(message)) return actionError(action, message, status)
    const hint = /ip/i.test(message)
      ? ' (add this machine to API IP Access Restriction or send the access key)'
      : AUTH_403.test(message)
        ? ' (check the API identifier and secret; repeated failures can get this IP banned)'
        : ''
    return new AuthError(`WHMCS refused the request: ${message || 'HTTP 403'}${hint}`, {
      retryable: false,
      details: details(action, message, status),
    })
  }
  if (status === 401) {
    return new AuthError(`WHMCS refused the credentials: ${message || 'HTTP 401'}`, {
      retryable: false,
      details: details(action, message, status),
    })
  }
  if (status === 429) {
    return new RateLimitedError(`WHMCS ${action}: rate limited (HTTP 429)`, {
      details: details(action, message, status),
    })
  }
  const text = `WHMCS ${action}: HTTP ${status}${message ? ` ${message}` : ''}`
  return new HttpError(text, {
    status,
    method: 'POST',
    path: 'includes/api.php',
    body,
    details: details(action, message, status),
  })
}

export function protocolError(action: string, why: string, cause?: unknown): PanelkitError {
  return new ProtocolError(`WHMCS ${action}: ${why}`, cause === undefined ? {} : { cause })
}
