import { type Redactor, UnsupportedError } from '@panelkit/core'
import type { BillingSource } from './billing.ts'
import type { Config } from './config.ts'

/**
 * The billing source backed by `@panelkit/whmcs` (its External API client and reverse sync).
 * INTEGRATION PENDING: the WHMCS package had not landed when this was written; until it does, a
 * configured `whmcs` section is refused with a clear error instead of pretending to sync.
 */
export async function whmcsBilling(
  _config: NonNullable<Config['whmcs']>,
  _redactor: Redactor,
): Promise<BillingSource> {
  throw new UnsupportedError(
    'The WHMCS billing source is not wired into this build of the provisioner yet (@panelkit/whmcs pending)',
  )
}
