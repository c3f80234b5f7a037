/**
 * Read-only checks against a real cluster (never in CI): `pnpm test:live` with
 * PROXMOX_LIVE_URL=https://pve:8006, PROXMOX_LIVE_TOKEN_ID + PROXMOX_LIVE_TOKEN_SECRET (or
 * PROXMOX_LIVE_USER + PROXMOX_LIVE_PASSWORD), and PROXMOX_LIVE_FINGERPRINT to pin the certificate.
 */
import assert from 'node:assert/strict'
import type { ProxmoxCredentials } from '../../src/auth.ts'
import { createProxmoxClient } from '../../src/client.ts'

const env = process.env
const url = env.PROXMOX_LIVE_URL
if (!url) {
  console.error('Set PROXMOX_LIVE_URL (and credentials) to run the live checks.')
  process.exit(2)
}
const credentials: ProxmoxCredentials = env.PROXMOX_LIVE_TOKEN_ID
  ? { type: 'token', tokenId: env.PROXMOX_LIVE_TOKEN_ID, secret: env.PROXMOX_LIVE_TOKEN_SECRET ?? '' }
  : {
      type: 'password',
      username: env.PROXMOX_LIVE_USER ?? 'root@pam',
      password: env.PROXMOX_LIVE_PASSWORD ?? '',
    }
const client = createProxmoxClient({
  baseUrl: url,
  credentials,
  tls: env.PROXMOX_LIVE_FINGERPRINT ? { fingerprint: env.PROXMOX_LIVE_FINGERPRINT } : {},
})
try {
  const version = await client.api.version({})
  assert.match(version.version, /^\d+\.\d+/)
  const nodes = await client.api.nodes({})
  assert.ok(nodes.length > 0, 'no nodes')
  const vms = await client.api.clusterResources({ type: 'vm' })
  assert.ok(Array.isArray(vms))
  const next = await client.nextId()
  assert.ok(next >= 100)
  console.log(
    `ok: PVE ${version.version}, ${nodes.length} node(s), ${vms.length} guest(s), next VMID ${next}`,
  )
} finally {
  await client.close()
}
