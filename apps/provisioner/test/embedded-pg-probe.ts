// `.ci/run` asks this first whether the tests' own PostgreSQL (test/embedded-pg.ts) starts on this machine,
// so it can fall back to Debian's package and say why. Exit 0 when it starts, 1 with the reason.
import { startEmbeddedPostgres } from './embedded-pg.ts'

try {
  const server = await startEmbeddedPostgres({ database: 'panelkit_probe', prefix: 'panelkit-pg-probe-' })
  await server.stop()
  console.log('embedded PostgreSQL starts')
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error))
  process.exit(1)
}
