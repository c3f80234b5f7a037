/**
 * A runnable tour of the lifecycle contract against the in-memory example panel:
 * create (twice), a conflict, suspend/unsuspend, a dry-run, invalid input and terminate, with the
 * redacted module log printed as it happens.
 */
import { createConnector, formatPipelineRun, HumanLogSink, type Result } from '../src/index.ts'
import { MemoryPanel, memoryPanelConnector, registerMemoryPanel } from '../src/testing/index.ts'

const panel = registerMemoryPanel('panel.example.net', new MemoryPanel({ apiPassword: 'Api-Secret-123' }))
const connector = createConnector(memoryPanelConnector, { sink: new HumanLogSink(process.stdout) })
const server = { hostname: 'panel.example.net', password: 'Api-Secret-123' }
const service = {
  serviceId: 5546,
  clientId: 12,
  username: 'alice',
  password: 'Correct-Horse-Battery-9',
  server,
  settings: { plan: 'pro' },
  client: { email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell' },
}

let failures = 0
function show(title: string, result: Result<unknown>, expectOk: boolean, serviceId = service.serviceId) {
  const verdict = result.ok === expectOk ? 'as expected' : 'UNEXPECTED'
  if (result.ok !== expectOk) failures++
  const summary = result.ok ? JSON.stringify(result.data) : `${result.error.code}: ${result.error.detail}`
  console.log(`\n== ${title}: ${result.ok ? 'ok' : 'failed'} (${verdict}) ${summary}`)
  for (const run of result.runs ?? []) {
    console.log(formatPipelineRun(run, { subject: `service=${serviceId}` }))
  }
}

show('create', await connector.invoke('create', { service }), true)
show('create again (idempotent)', await connector.invoke('create', { service }), true)
show(
  'create for another service with the same username',
  await connector.invoke('create', { service: { ...service, serviceId: 9999 } }),
  false,
  9999,
)
show('suspend', await connector.invoke('suspend', { service }), true)
show('suspend again', await connector.invoke('suspend', { service }), true)
show('unsuspend', await connector.invoke('unsuspend', { service }), true)
show(
  'upgrade (dry-run)',
  await connector.invoke(
    'changePackage',
    { service: { ...service, settings: { plan: 'enterprise' } } },
    { dryRun: true },
  ),
  true,
)
show(
  'invalid email',
  await connector.invoke('create', { service: { ...service, client: { ...service.client, email: 'nope' } } }),
  false,
)
show('terminate', await connector.invoke('terminate', { service }), true)
show('terminate again', await connector.invoke('terminate', { service }), true)
console.log(`\nAccounts left on the panel: ${panel.accounts.size}; the password never appears above.`)
if (failures > 0 || panel.accounts.size !== 0) process.exit(1)
