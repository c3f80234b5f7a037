/**
 * What panelkit stores on the server about an account or domain it manages, in one free-text contact
 * attribute (`notes` of the account's contact information; for a domain, of its postmaster account):
 *
 *   panelkit:v1 service=123
 *   panelkit:v1 service=123 suspended=imap,pop3,smtp      (explicit services before suspension)
 *   panelkit:v1 service=123 suspended=inherit             (services were inherited from the class)
 *
 * The owner tag makes a repeated create idempotent and a clash with someone else's account a CONFLICT;
 * the suspension snapshot lets unsuspend restore exactly the services the account had.
 */

/** The default marker attribute; a server may need another (the `markerAttribute` dialect option). */
export const MARKER_ATTRIBUTE = 'notes'
const PREFIX = 'panelkit:v1'

export interface Marker {
  serviceId: string
  /** Present while suspended: the services to restore, or `inherit`. */
  suspended?: string[] | 'inherit'
}

export function formatMarker(marker: Marker): string {
  let out = `${PREFIX} service=${marker.serviceId}`
  if (marker.suspended !== undefined)
    out += ` suspended=${marker.suspended === 'inherit' ? 'inherit' : marker.suspended.join(',')}`
  return out
}

export function parseMarker(text: string | undefined): Marker | undefined {
  if (!text?.startsWith(PREFIX)) return undefined
  const fields = new Map<string, string>()
  for (const part of text.slice(PREFIX.length).trim().split(/\s+/)) {
    const eq = part.indexOf('=')
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1))
  }
  const serviceId = fields.get('service')
  if (!serviceId) return undefined
  const marker: Marker = { serviceId }
  const suspended = fields.get('suspended')
  if (suspended !== undefined)
    marker.suspended = suspended === 'inherit' ? 'inherit' : suspended.split(',').filter((s) => s.length > 0)
  return marker
}
