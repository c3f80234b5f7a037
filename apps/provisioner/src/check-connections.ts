import type { ConnectorInstance, Failure, OperationResult } from '@panelkit/core'
import type { ServerConfig } from './config.ts'
import { serverInput } from './engine/engine.ts'

/**
 * How long `provisioner check` waits for one server or for WHMCS. A check answers in seconds, or says
 * TIMEOUT: a server that accepts connections and never answers must not hold it for minutes (a
 * Proxmox behind such a proxy took 9 logins × 60 s before this limit).
 */
export const CHECK_TIMEOUT_MS = 15_000

/** Tests one configured server within `timeoutMs`; never throws. */
export async function testServerConnection(
  connector: ConnectorInstance,
  server: ServerConfig,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<{ ok: true; data: OperationResult<'testConnection'> } | { ok: false; error: Failure }> {
  const result = await connector.invoke('testConnection', { server: serverInput(server) }, { timeoutMs })
  return result.ok ? { ok: true, data: result.data } : { ok: false, error: result.error }
}

/** A signal that fires after the check's deadline, for the WHMCS calls of `check`. */
export function checkDeadline(timeoutMs = CHECK_TIMEOUT_MS): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(timeoutMs) }
}
