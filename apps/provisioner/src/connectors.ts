import type { Config } from './config.ts'
import type { ConnectorRegistration } from './engine/engine.ts'
import type { Store } from './store/store.ts'

/**
 * The connectors this provisioner ships with, each given its durable stores (IP pools, VMID
 * reservations) from the store. Only connectors the config refers to are built.
 */
export function builtinConnectors(_store: Store, _config: Config): ConnectorRegistration[] {
  return []
}
