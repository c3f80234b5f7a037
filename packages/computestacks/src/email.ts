import { isIP } from 'node:net'
import { ValidationError } from '@panelkit/core'

/**
 * What ComputeStacks accepts as an email: Devise's `:validatable` format check (the controller enables
 * it in `app/models/concerns/users/access_control.rb` and leaves `config.email_regexp` commented out in
 * `config/initializers/devise.rb`, so Devise 4.9.3's default applies: one `@`, no whitespace on either
 * side). Control characters are refused on top: they would corrupt logs and URLs.
 */
const DEVISE_EMAIL = /^[^@\s]+@[^@\s]+$/
const CONTROL = /[\u0000-\u001f\u007f]/

export function isAccountEmail(value: string): boolean {
  return DEVISE_EMAIL.test(value) && !CONTROL.test(value)
}

/** A host name label by label (letters, digits, hyphens; IDN in its Unicode or punycode form). */
const HOST_LABEL = /^(?!-)[\p{L}\p{N}-]{1,63}(?<!-)$/u

/**
 * The domain part for a server address: a host name as is (lower-cased), an IPv4 or IPv6 address as an
 * RFC 5321 address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), so the result is an email by every
 * reasonable check and not only by Devise's. Undefined when the value is neither.
 */
export function emailDomainFor(host: string): string | undefined {
  const value = host.trim().replace(/^\[(.*)\]$/, '$1')
  if (value === '') return undefined
  const ip = isIP(value)
  if (ip === 4) return `[${value}]`
  if (ip === 6) return `[IPv6:${value.toLowerCase()}]`
  const name = value.replace(/\.$/, '').toLowerCase()
  if (name.length > 253 || !name.split('.').every((label) => HOST_LABEL.test(label))) return undefined
  return name
}

export interface AccountEmailInput {
  /** The billing service's username; used as is when it already is an email. */
  username?: string | undefined
  /** The client's own email: its local part names the account when the username is empty. */
  clientEmail: string
  clientId: string | number
  serviceId: string | number
  /** The `emailDomain` product setting, when set. */
  emailDomain?: string | undefined
  /** The server's host name or address (the default domain, as ComputeStacks' module uses it). */
  serverHost: string
}

/**
 * The account's email: the service username when ComputeStacks would take it as an email (as its own
 * module does), otherwise `{name}{clientId}-{serviceId}@{domain}`, unique per service. The name keeps
 * every character Devise accepts (`&`, `+`, `'`, `=` …), dropping only whitespace, `@` and control
 * characters.
 */
export function buildAccountEmail(input: AccountEmailInput): string {
  const username = input.username?.trim() ?? ''
  if (username !== '' && isAccountEmail(username)) return username
  const source = username !== '' ? username : (input.clientEmail.split('@')[0] ?? '')
  const name = source
    .toLowerCase()
    .replace(/[\s@\u0000-\u001f\u007f]/g, '')
    .replace(/^\.+|\.+$/g, '')
  const configured = input.emailDomain?.trim() ?? ''
  const domain = emailDomainFor(configured !== '' ? configured : input.serverHost)
  if (domain === undefined) {
    const what =
      configured !== ''
        ? `the emailDomain setting ${JSON.stringify(configured)} is not a host name or IP address`
        : `the server address ${JSON.stringify(input.serverHost)} is not a host name or IP address`
    throw new ValidationError(
      `Cannot build an account email for service ${input.serviceId}: the service username is not an email and ${what}; set the product's emailDomain setting to a domain such as cloud.example.com`,
      [{ path: 'service.settings.emailDomain', message: 'must be a host name to build account emails' }],
    )
  }
  return `${name || 'user'}${input.clientId}-${input.serviceId}@${domain}`
}
