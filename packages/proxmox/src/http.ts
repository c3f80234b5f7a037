import { ProtocolError } from '@panelkit/core'
import {
  createHttpTransport as createSharedTransport,
  type HttpLimits,
  type HttpResponse,
  type HttpTransport,
  type TlsOptions,
} from '@panelkit/core/http'
import type { Dispatcher } from 'undici'

/**
 * The transport is core's shared HTTP layer (`@panelkit/core/http`): TLS options and pinning, capped
 * reads, time limits and socket/TLS errors as core errors. What is Proxmox's own is here and in the
 * client: form bodies, the `/api2/json` prefix, ticket/token authentication and the error envelope.
 */

export { createTlsAgent, normaliseFingerprint } from '@panelkit/core/http'
export type { HttpResponse, HttpTransport, TlsOptions }

export interface HttpTransportOptions extends HttpLimits {
  /** `https://pve1.example.com:8006`; the API path `/api2/json` is added by the client. */
  baseUrl: string
  dispatcher?: Dispatcher
  tls?: TlsOptions
  /** Connections kept per origin (when the transport builds its own Agent). */
  connections?: number
  /** Where the one-time security warnings go (default: `process.emitWarning`). */
  warn?: (message: string) => void
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** Path and query string, already encoded. */
  path: string
  headers?: Record<string, string>
  /** A form-encoded body. */
  body?: string
  signal?: AbortSignal
}

const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' }

export function createHttpTransport(options: HttpTransportOptions): HttpTransport & {
  request(request: HttpRequest): Promise<HttpResponse>
} {
  const { baseUrl, dispatcher, tls, connections, warn, ...limits } = options
  const shared = createSharedTransport({
    origin: baseUrl,
    system: 'Proxmox',
    tlsHint:
      'pass the cluster CA (tls.ca, e.g. pve-root-ca.pem) or pin the certificate fingerprint (tls.fingerprint)',
    ...limits,
    ...(dispatcher ? { dispatcher } : {}),
    ...(tls ? { tls } : {}),
    ...(connections !== undefined ? { connections } : {}),
    ...(warn ? { warn } : {}),
  })
  return {
    origin: shared.origin,
    plain: shared.plain,
    close: () => shared.close(),
    request(req) {
      if (req.body === undefined) return shared.request(req)
      return shared.request({ ...req, headers: { ...req.headers, ...FORM_HEADERS } })
    },
  }
}

/** Parses a JSON body, naming the request when the server sent something else. */
export function parseJsonBody(response: HttpResponse, what: string): unknown {
  if (response.text === '') return undefined
  try {
    return JSON.parse(response.text)
  } catch (error) {
    throw new ProtocolError(`${what}: the server sent a body that is not JSON (HTTP ${response.status})`, {
      cause: error,
    })
  }
}
