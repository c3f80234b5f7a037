import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRedactor } from '@panelkit/core'
import BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect } from 'kysely'
import { describe, expect, it } from 'vitest'
import { main } from '../src/cli.ts'
import { createLogger, prettyLine } from '../src/logger.ts'
import { migrations } from '../src/store/migrations.ts'
import { TEST_KEY } from './helpers.ts'

async function cli(argv: string[], env: Record<string, string> = {}) {
  const lines: string[] = []
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const code = await main(argv, {}, { out: (l) => lines.push(l), err: (l) => lines.push(l) })
    return { code, text: lines.join('\n') }
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
}

function configIn(dir: string, extra = ''): string {
  const file = join(dir, 'provisioner.yaml')
  writeFileSync(file, `store:\n  dataDir: ${join(dir, 'data')}\n  encryptionKey: "\${KEY}"\n${extra}`)
  return file
}

/** Every migration this version has, in order; the last one is the one a store may be behind by. */
const NAMES = Object.keys(migrations('sqlite')).sort()
const LAST = NAMES.at(-1) as string

const COMMANDS = [
  'check',
  'sync',
  'worker',
  'serve',
  'status',
  'retry',
  'cancel',
  'reconcile',
  'import',
  'drift',
  'settle',
  'credit',
  'log',
  'backup',
  'migrate',
  'demo',
]

describe('the command line', () => {
  it('answers --help for every command with its own options, and --version without a config', async () => {
    for (const command of COMMANDS) {
      const out = await cli([command, '--help'])
      expect(out.code, command).toBe(0)
      expect(out.text, command).toContain(`Usage: provisioner ${command} [options]`)
      if (command !== 'demo') expect(out.text, command).toContain('-c, --config <file>')
    }
    expect((await cli(['worker', '--help'])).text).toMatch(/--shutdown-grace <seconds>/)
    expect((await cli(['log', '--help'])).text).toMatch(/--outcome <outcome>.*\n?.*"ok", "error", "dry-run"/)
    const help = await cli(['--help'])
    for (const command of COMMANDS) expect(help.text).toContain(command)
    expect(help.text).toMatch(/Exit codes: 0 done; 1 failed or found problems; 2 wrong command line/)
    const version = await cli(['--version'], { PROVISIONER_CONFIG: '/nonexistent/provisioner.yaml' })
    expect(version).toEqual({ code: 0, text: JSON.parse(readFileSync('package.json', 'utf8')).version })
  })

  it('refuses an unknown command, unknown options and bad values before touching the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-args-'))
    const file = configIn(dir)
    const env = { KEY: TEST_KEY }
    const cases: [string[], RegExp][] = [
      [['frobnicate', '-c', file], /unknown command 'frobnicate'/],
      [['status', '--colour', '-c', file], /unknown option '--colour'/],
      [['log', '--limit', 'abc', '-c', file], /--limit must be a whole number from 1 to 10000/],
      [['log', '--limit', '0', '-c', file], /--limit must be a whole number/],
      [['log', '--outcome', 'maybe', '-c', file], /Allowed choices are ok, error, dry-run/],
      [['retry', '--job', '12x', '-c', file], /--job must be a whole number/],
      [['worker', '--concurrency', '-3', '-c', file], /--concurrency|unknown option/],
      [['status', '--log-level', 'loud', '-c', file], /Allowed choices are debug, info, warn, error/],
      [['settle', '--key', 'k', '--as', 'maybe', '-c', file], /Allowed choices are done, release/],
      [
        ['credit', '--client', '1', '--deposit', 'd', '--amount', 'lots', '-c', file],
        /--amount must be a decimal/,
      ],
      [['import', '-c', file], /required option '--server <id>'/],
      [['cancel', '-c', file], /cancel needs --job N or --service ID/],
      [['sync', '--client', '1', '--service', '2', '-c', file], /at most one of/],
    ]
    for (const [argv, message] of cases) {
      const out = await cli(argv, env)
      expect({ argv, code: out.code }).toEqual({ argv, code: 2 })
      expect(out.text).toMatch(message)
    }
    // Nothing was created: the store directory does not exist.
    expect(existsSync(join(dir, 'data'))).toBe(false)
    expect((await cli([])).code).toBe(2)
  })

  it('`check --offline` checks the file alone; `check` looks at the store read-only and never creates or migrates it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-check-'))
    const file = configIn(dir)
    const env = { KEY: TEST_KEY }
    const offline = await cli(['check', '--offline', '-c', file], env)
    expect(offline.code).toBe(0)
    expect(offline.text).toMatch(/offline: no store, servers or WHMCS contacted/)
    const online = await cli(['check', '-c', file], env)
    expect(online.code).toBe(0)
    expect(online.text).toMatch(/store: No store at .* yet/)
    expect(existsSync(join(dir, 'data'))).toBe(false)
    // A store one migration behind (an earlier version made it) stays behind after `check`.
    mkdirSync(join(dir, 'data'))
    const older = new Kysely<unknown>({
      dialect: new SqliteDialect({ database: new BetterSqlite3(join(dir, 'data', 'provisioner.sqlite')) }),
    })
    const made = await new Migrator({
      db: older,
      provider: { getMigrations: async () => migrations('sqlite') },
    }).migrateTo(NAMES.at(-2) as string)
    expect(made.error).toBeUndefined()
    await older.destroy()
    const behind = await cli(['check', '-c', file], env)
    expect(behind.text).toMatch(/1 migration\(s\) pending/)
    const status = await cli(['migrate', '--status', '-c', file], env)
    expect(status.text).toContain(`${NAMES.at(-2)}  applied `)
    expect(status.text).toContain(`${LAST}  pending`)
    const dry = await cli(['migrate', '--dry-run', '-c', file], env)
    expect(dry.text).toContain(`would apply ${LAST}\nmigrate: ${NAMES.length - 1} applied, 1 pending`)
    expect((await cli(['migrate', '--status', '-c', file], env)).text).toContain(`${LAST}  pending`)
    const applied = await cli(['migrate', '-c', file], env)
    expect(applied.text).toContain(`applied ${LAST}`)
    expect((await cli(['migrate', '--status', '-c', file], env)).text).toContain(
      `migrate: ${NAMES.length} applied, 0 pending`,
    )
  })

  it('`check` reports every mistake an operator makes, each at its path, and creates nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-typos-'))
    const file = join(dir, 'p.yaml')
    writeFileSync(
      file,
      readFileSync('examples/proxmox-kvm.yaml', 'utf8')
        .replace('template: "9000"', 'templat: "9000"')
        .replace('ipPool: public', 'ipPool: pubilc')
        .replace('diskGb: 20\n', 'diskGb: "20GB"\n')
        .replace('cores: 1\n', 'cores: 0\n')
        .replace('203.0.113.10-200', '203.0.113.10-300')
        .replace('/var/lib/provisioner', join(dir, 'data'))
        .concat('worker:\n  concurency: 2\nhttp:\n  listen: "8080"\n'),
    )
    const env = {
      WHMCS_SECRET: 'w-secret',
      PVE_PASSWORD: 'p-secret',
      PVE_FINGERPRINT: 'AB:CD:EF',
      PROVISIONER_KEY: TEST_KEY,
    }
    const out = await cli(['check', '--offline', '-c', file], env)
    expect(out.code).toBe(1)
    for (const line of [
      'worker.concurency: unknown key (did you mean concurrency?)',
      'http.listen: must be host:port',
      'ipPools[0].addresses[0]: range end 300 is above 255',
      'products[0].settings.ipPool: no IP pool pubilc (did you mean public?)',
      'servers[0].options.fingerprint: A SHA-256 fingerprint has 32 bytes; got 3',
      'products[0].settings.templat: unknown setting of proxmox-kvm (did you mean template?)',
      'products[0].settings.template: is required by proxmox-kvm',
      'products[0].settings.diskGb: System disk must be a number',
      'products[0].plans.values.Basic.cores: CPU cores must be at least 1',
    ])
      expect(out.text).toContain(line)
    expect(out.text).not.toMatch(/INTERNAL|Unexpected error/)
    expect(out.text).not.toMatch(/w-secret|p-secret/)
    expect(existsSync(join(dir, 'data'))).toBe(false)
  })

  it('`backup` copies a SQLite store with VACUUM INTO and prints the pg_dump line for PostgreSQL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-backup-'))
    const file = configIn(dir)
    const env = { KEY: TEST_KEY }
    expect((await cli(['backup', '--to', join(dir, 'b.sqlite'), '-c', file], env)).text).toMatch(
      /No store at/,
    )
    expect((await cli(['migrate', '-c', file], env)).code).toBe(0)
    const db = new BetterSqlite3(join(dir, 'data', 'provisioner.sqlite'))
    db.prepare(`insert into meta (key, value) values ('backup-marker', 'kept')`).run()
    db.close()
    const target = join(dir, 'backup.sqlite')
    const out = await cli(['backup', '--to', target, '-c', file], env)
    expect(out.code).toBe(0)
    expect(out.text).toMatch(
      /backup: .* -> .*backup\.sqlite \(\d+ bytes\); keep store\.encryptionKey with it/,
    )
    const copy = new BetterSqlite3(target, { readonly: true })
    expect(copy.prepare(`select value from meta where key = 'backup-marker'`).get()).toEqual({
      value: 'kept',
    })
    expect(copy.prepare('select count(*) as n from kysely_migration').get()).toEqual({ n: NAMES.length })
    copy.close()
    const again = await cli(['backup', '--to', target, '-c', file], env)
    expect(again.code).toBe(1)
    expect(again.text).toMatch(/exists already/)
    const pgFile = join(dir, 'pg.yaml')
    writeFileSync(
      pgFile,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      'store:\n  url: "${PG}"\n  schema: provisioner\n  encryptionKey: "${KEY}"\n',
    )
    const pg = await cli(['backup', '--to', 'nightly.dump', '-c', pgFile], {
      ...env,
      PG: 'postgresql://prov:Pg-Secret-9@db.example.net:5432/panelkit',
    })
    expect(pg.code).toBe(0)
    expect(pg.text).toContain(
      'pg_dump --format=custom --no-owner --schema=provisioner --file=nightly.dump postgresql://prov@db.example.net:5432/panelkit',
    )
    expect(pg.text).not.toContain('Pg-Secret-9')
    expect(readdirSync(dir)).not.toContain('nightly.dump')
  })

  it('logs JSON lines for machines and readable lines on a terminal, secrets masked in both', () => {
    const redactor = createRedactor({ values: ['Log-Secret-77'] })
    const json: string[] = []
    createLogger({ redactor, stream: { write: (s: string) => json.push(s) } as never }).info('job done', {
      jobId: 3,
      detail: 'password Log-Secret-77 sent',
    })
    const entry = JSON.parse(json[0] as string)
    expect(entry).toMatchObject({ level: 'info', msg: 'job done', jobId: 3 })
    expect(json[0]).not.toContain('Log-Secret-77')
    const pretty: string[] = []
    const tty = { write: (s: string) => pretty.push(s), isTTY: true }
    createLogger({ redactor, stream: tty as never, format: 'pretty' }).warn('lease lost', {
      jobId: 7,
      detail: 'Log-Secret-77',
    })
    // On a terminal the line first clears whatever a progress bar drew on it.
    expect(pretty[0]).toMatch(
      /^\r\x1b\[2K\d{2}:\d{2}:\d{2}\.\d{3} \x1b\[33mWARN \x1b\[0m lease lost jobId=7 detail=/,
    )
    expect(pretty[0]).not.toContain('Log-Secret-77')
    expect(prettyLine({ time: '2026-01-02T03:04:05.678Z', level: 'info', msg: 'hi', n: 1 }, false)).toBe(
      '03:04:05.678 INFO  hi n=1\n',
    )
  })
})
