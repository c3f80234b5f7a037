import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { listJobs } from '../src/engine/jobs.ts'
import { TEST_KEY } from './helpers.ts'
import { processWorld } from './processes.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')

async function until(what: string, test: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
}

describe('worker processes stop when told (SIGTERM / SIGINT)', () => {
  it('finishes running jobs, releases nothing it finished, exits 0, and never warns about listeners', {
    timeout: 120_000,
  }, async () => {
    const world = await processWorld('sqlite', { writeDelayMs: 300, concurrency: 4 })
    try {
      for (let i = 0; i < 8; i++) world.order()
      await world.app.engine.sync()
      const worker = world.spawnWorker(['--shutdown-grace', '20'])
      const running = () =>
        listJobs(world.app.store.db, { status: ['running'] }).then((j) =>
          j.some((x) => x.leaseOwner !== null),
        )
      await until('a running job', running)
      const doneBefore = world.panel.creates.size
      worker.kill('SIGTERM')
      expect(await worker.done).toBe(0)
      // The jobs it held were finished (each write takes 300 ms, well within the grace), none taken
      // over later, and no lease is left behind.
      const jobs = await listJobs(world.app.store.db, { limit: 1000 })
      expect(jobs.filter((j) => j.status === 'running')).toEqual([])
      expect(jobs.filter((j) => j.leaseOwner !== null)).toEqual([])
      expect(world.panel.creates.size).toBeGreaterThan(doneBefore)
      expect(worker.stderrText()).toMatch(/SIGTERM: stopping/)
      expect(worker.stderrText()).not.toMatch(/MaxListenersExceededWarning/)
      // What was not started is still queued, and the next worker does it, each account once.
      const rest = world.spawnWorker(['--once'])
      expect(await rest.done).toBe(0)
      expect([...world.panel.creates.values()].every((n) => n === 1)).toBe(true)
      expect(world.panel.creates.size).toBe(8)
      expect(rest.stderrText()).not.toMatch(/Warning/)
    } finally {
      await world.close()
    }
  })

  it('past the grace period it aborts the jobs and releases their leases; a second signal exits at once', {
    timeout: 120_000,
  }, async () => {
    const world = await processWorld('sqlite', { writeDelayMs: 4000, concurrency: 2 })
    try {
      for (let i = 0; i < 2; i++) world.order()
      await world.app.engine.sync()
      const held = () =>
        listJobs(world.app.store.db, { status: ['running'] }).then(
          (j) => j.filter((x) => x.leaseOwner).length,
        )
      // Grace 0: the jobs are aborted at once, and their leases are released (not left to expire).
      const first = world.spawnWorker(['--shutdown-grace', '0'])
      await until('two running jobs', async () => (await held()) === 2)
      const started = Date.now()
      first.kill('SIGINT')
      expect(await first.done).toBe(0)
      expect(Date.now() - started).toBeLessThan(3000)
      const jobs = await listJobs(world.app.store.db, { limit: 100 })
      expect(jobs.map((j) => [j.status, j.leaseOwner])).toEqual([
        ['queued', null],
        ['queued', null],
      ])
      // A generous grace, then a second signal: the process exits now, with 128 + SIGTERM.
      const second = world.spawnWorker(['--shutdown-grace', '60'])
      world.expectExit(second)
      await until('two running jobs again', async () => (await held()) === 2)
      second.kill('SIGTERM')
      await sleep(200)
      second.kill('SIGTERM')
      const t = Date.now()
      expect(await second.done).toBe(143)
      expect(Date.now() - t).toBeLessThan(3000)
      // Nothing is lost: a last worker, started at once, waits for the killed worker's leases (2 s,
      // renewed until it died) to run out and takes the jobs over. The panel may still be writing the
      // creates the killed workers sent (4 s each): the retry's lookup finds no account, its own create
      // is refused as taken, and the connector finds the account carries this service's id (without
      // that, both jobs were parked here, 3 runs in 3).
      const last = world.spawnWorker(['--once'])
      expect(await last.done).toBe(0)
      // A failure names each job's last error, so it says which job and why.
      const ended = await listJobs(world.app.store.db, { limit: 100 })
      expect(
        ended.map((j) => j.status),
        JSON.stringify(ended.map((j) => [j.operation, j.status, j.lastError?.detail])),
      ).toEqual(ended.map(() => 'done'))
      expect([...world.panel.creates.values()].every((n) => n === 1)).toBe(true)
    } finally {
      await world.close()
    }
  })
})

describe('bin/provisioner.js runs the CLI in its own process', () => {
  async function freePort(): Promise<number> {
    const server = createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    await new Promise<void>((r) => server.close(() => r()))
    return port
  }

  it('`serve` and `worker` stop on SIGTERM with exit 0 and leave nothing listening', {
    timeout: 180_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-bin-'))
    const port = await freePort()
    const config = join(dir, 'provisioner.yaml')
    writeFileSync(
      config,
      [
        'store:',
        `  dataDir: ${join(dir, 'data')}`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        '  encryptionKey: "${KEY}"',
        'http:',
        `  listen: 127.0.0.1:${port}`,
        '  tokens:',
        '    - bin-test-token-0123456789',
      ].join('\n'),
    )
    const run = (args: string[]) => {
      const child = spawn(process.execPath, [join(appDir, 'bin', 'provisioner.js'), ...args, '-c', config], {
        cwd: dir,
        env: { ...process.env, KEY: TEST_KEY, PROVISIONER_FROM_SOURCE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
      })
      child.stderr?.on('data', (d: Buffer) => {
        out += d.toString()
      })
      return { child, output: () => out, exit: exited(child) }
    }
    try {
      const serve = run(['serve', '--log-format', 'json'])
      await until('the API', () => /API on http:\/\/127\.0\.0\.1:\d+/.test(serve.output()), 120_000)
      const health = await fetch(`http://127.0.0.1:${port}/v1/health`)
      expect(health.status).toBe(200)
      serve.child.kill('SIGTERM')
      expect(await serve.exit).toEqual({ code: 0, signal: null })
      // The process that was signalled was the one serving: nothing answers any more.
      await expect(fetch(`http://127.0.0.1:${port}/v1/health`)).rejects.toThrow()

      const worker = run(['worker'])
      await until('the worker', () => /worker: running as/.test(worker.output()), 120_000)
      worker.child.kill('SIGTERM')
      expect(await worker.exit).toEqual({ code: 0, signal: null })
      expect(worker.output()).toMatch(/worker: 0 job runs/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
