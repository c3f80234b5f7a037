/**
 * API versions as ComputeStacks 9.3 (VersionCake) treats them, read from the controller's
 * initializer. The version travels as a parameter of the Accept header.
 */
export const API_VERSIONS = {
  /** Refused with 422 and `API-Version-Supported: false`. */
  obsolete: [40, 50] as readonly number[],
  /** Answered normally, with `API-Deprecated: true`. */
  deprecated: [51, 52, 53, 54, 60, 61, 62, 65, 70, 71] as readonly number[],
  supported: [80] as readonly number[],
  /** What the server assumes when the Accept header names no version. */
  default: 80,
} as const

/** The version this client asks for unless told otherwise: the only one not deprecated. */
export const DEFAULT_API_VERSION = 80

export function acceptHeader(version: number): string {
  return `application/json; api_version=${version}`
}

/** Reads `api_version=NN` out of an Accept header; undefined when absent. */
export function versionFromAccept(accept: string | undefined): number | undefined {
  if (!accept) return undefined
  const match = /(?:^|[;,\s])api_version\s*=\s*"?(\d+)"?/i.exec(accept)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

export type ApiVersionStatus = 'supported' | 'deprecated' | 'unsupported'

export function apiVersionStatus(version: number): ApiVersionStatus {
  if (API_VERSIONS.supported.includes(version)) return 'supported'
  if (API_VERSIONS.deprecated.includes(version)) return 'deprecated'
  return 'unsupported'
}
