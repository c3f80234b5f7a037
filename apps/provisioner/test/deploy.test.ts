import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { validate as lintDockerfile } from 'dockerfile-utils'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { main } from '../src/cli.ts'
import { TEST_KEY } from './helpers.ts'

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const read = (...p: string[]) => readFileSync(join(appDir, ...p), 'utf8')

/** Whether a program is on the PATH (the linters are optional: CI installs them, a laptop may not). */
function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0
}

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

/** A command line the deployment files run is a command the CLI has, with options it knows. */
async function expectValidCommand(argv: string[]) {
  const [command] = argv
  const help = await cli([command as string, '--help'])
  expect(help.code, argv.join(' ')).toBe(0)
  for (const option of argv.filter((a) => a.startsWith('-')))
    expect(help.text, `${argv.join(' ')}: ${option}`).toContain(option)
}

/** Environment values the example configs reference. */
const EXAMPLE_ENV = {
  WHMCS_SECRET: 'example-whmcs-secret',
  AXIGEN_PASSWORD: 'example-axigen-password',
  PVE_PASSWORD: 'example-pve-password',
  PVE_FINGERPRINT: Array.from({ length: 32 }, () => 'AB').join(':'),
  CS_API_KEY: 'example-key',
  CS_API_SECRET: 'example-secret',
  DATABASE_URL: 'postgresql://provisioner@db.example.net:5432/provisioner',
  API_TOKEN: 'example-api-token-0123456789',
  PROVISIONER_KEY: TEST_KEY,
}

describe('example configs', () => {
  const examples = readdirSync(join(appDir, 'examples')).filter((f) => f.endsWith('.yaml'))

  it('there is a minimal SQLite one, a PostgreSQL multi-worker one and one per connector product', () => {
    expect(examples.sort()).toEqual(
      [
        'axigen-account.yaml',
        'axigen-domain.yaml',
        'computestacks-account.yaml',
        'minimal-sqlite.yaml',
        'postgres-multi-worker.yaml',
        'proxmox-kvm.yaml',
      ].sort(),
    )
  })

  it.each(examples)('%s passes `check --offline`', async (file) => {
    const out = await cli(['check', '--offline', '-c', join(appDir, 'examples', file)], EXAMPLE_ENV)
    expect(out.text).toMatch(/config: ok/)
    expect(out.code).toBe(0)
  })

  it('the README shows each example as it is in its file', () => {
    const readme = read('README.md')
    const blocks = [...readme.matchAll(/<!-- example: (examples\/[\w.-]+) -->\n```yaml\n([\s\S]*?)```/g)]
    expect(blocks.map((b) => b[1]).sort()).toEqual(examples.map((f) => `examples/${f}`).sort())
    for (const [, file, body] of blocks) expect(body, file).toBe(read(file as string))
  })
})

describe('deployment files', () => {
  it('the Dockerfile is multi-stage, runs as a non-root user, checks /v1/health and runs real commands', async () => {
    const text = read('deploy', 'Dockerfile')
    const stages = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)]
    expect(stages.length).toBeGreaterThanOrEqual(2)
    const final = text.slice(text.lastIndexOf('\nFROM '))
    expect(final).toMatch(/^USER (?!root\b|0\b)\S+/m)
    expect(final).toMatch(/COPY --from=build /)
    expect(final).toMatch(/HEALTHCHECK[\s\S]*\/v1\/health/)
    expect(final).toContain('ENTRYPOINT ["node", "/app/bin/provisioner.js"]')
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(final)?.[1] ?? '[]') as string[]
    await expectValidCommand(cmd)
    // dockerfile-utils (the linter behind editors' Dockerfile support): syntax, flags, arguments.
    expect(lintDockerfile(text).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([])
    expect(lintDockerfile('FROM node:20\nCOPY --frm=build a b\n').map((d) => d.message)).toEqual([
      'Unknown flag: frm',
    ])
    if (has('hadolint')) execFileSync('hadolint', [join(appDir, 'deploy', 'Dockerfile')])
  })

  it('compose.yaml runs PostgreSQL, the API and two workers with valid commands', async () => {
    const compose = parseYaml(read('deploy', 'compose.yaml'), { merge: true }) as {
      services: Record<string, Record<string, unknown>>
    }
    const { db, api, worker } = compose.services as Record<string, Record<string, unknown>>
    if (!db || !api || !worker) throw new Error('compose.yaml needs the services db, api and worker')
    expect(String(db.image)).toMatch(/^postgres:/)
    expect((worker.deploy as { replicas: number }).replicas).toBe(2)
    expect(worker.healthcheck).toEqual({ disable: true })
    for (const service of [api, worker]) {
      const command = service.command as string[]
      await expectValidCommand(command)
      const grace = Number(command[command.indexOf('--shutdown-grace') + 1])
      expect(Number.parseInt(String(service.stop_grace_period), 10)).toBeGreaterThan(grace)
      expect(String((service.environment as Record<string, string>).DATABASE_URL)).toMatch(/@db:5432\//)
    }
    expect((api.command as string[])[0]).toBe('serve')
    expect((worker.command as string[])[0]).toBe('worker')
    if (has('docker') && spawnSync('docker', ['compose', 'version']).status === 0)
      execFileSync('docker', ['compose', '-f', join(appDir, 'deploy', 'compose.yaml'), 'config', '--quiet'], {
        env: { ...process.env, POSTGRES_PASSWORD: 'x' },
      })
  })

  it('the systemd units run real commands and pass `systemd-analyze verify` where it is installed', async () => {
    for (const unit of ['provisioner.service', 'provisioner-worker@.service']) {
      const text = read('deploy', unit)
      for (const line of text.split('\n').filter((l) => /^ExecStart(Pre)?=/.test(l))) {
        const argv = line.replace(/^[^=]+=/, '').split(' ')
        expect(argv.slice(0, 2)).toEqual(['/usr/bin/node', '/opt/provisioner/bin/provisioner.js'])
        await expectValidCommand(argv.slice(2))
      }
      expect(text).toMatch(/^KillSignal=SIGTERM$/m)
      expect(text).toMatch(/^User=provisioner$/m)
    }
    if (!has('systemd-analyze')) return
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-units-'))
    copyFileSync(join(appDir, 'deploy', 'provisioner.service'), join(dir, 'provisioner.service'))
    copyFileSync(
      join(appDir, 'deploy', 'provisioner-worker@.service'),
      join(dir, 'provisioner-worker@1.service'),
    )
    const verify = spawnSync(
      'systemd-analyze',
      ['verify', join(dir, 'provisioner.service'), join(dir, 'provisioner-worker@1.service')],
      { encoding: 'utf8' },
    )
    // Complaints about the machine (no such user or node binary here) are not about the units.
    const problems = `${verify.stderr}`
      .split('\n')
      .filter((l) => l.trim() !== '' && !/is not executable|No such file|Failed to resolve user/.test(l))
    expect(problems).toEqual([])
  })
})

describe('the built app', () => {
  // `pnpm test` builds the app (and the packages it imports) before its tests: turbo.json here.
  it('bin/provisioner.js runs dist/ without loading any TypeScript', () => {
    if (!existsSync(join(appDir, 'dist', 'cli.js')))
      throw new Error(
        'apps/provisioner/dist is missing: run the tests through `pnpm test`, which builds it first',
      )
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-built-'))
    const config = join(dir, 'provisioner.yaml')
    writeFileSync(config, `store:\n  dataDir: ${join(dir, 'data')}\n  encryptionKey: "\${KEY}"\n`)
    const noTs = `import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent('export async function load(url, context, next) { if (/\\\\.ts$/.test(url)) throw new Error("loaded TypeScript: " + url); return next(url, context) }'))`
    const run = (args: string[]) =>
      spawnSync(
        process.execPath,
        [
          '--import',
          `data:text/javascript,${encodeURIComponent(noTs)}`,
          join(appDir, 'bin', 'provisioner.js'),
          ...args,
        ],
        { encoding: 'utf8', env: { ...process.env, KEY: TEST_KEY, PROVISIONER_FROM_SOURCE: '0' } },
      )
    const status = run(['status', '-c', config, '--log-format', 'json'])
    expect(status.stderr).toBe('')
    expect(status.status).toBe(0)
    expect(status.stdout).toMatch(/0 services, 0 parked jobs/)
    // The guard does catch TypeScript: the same run from source fails on it.
    const source = spawnSync(
      process.execPath,
      [
        '--import',
        `data:text/javascript,${encodeURIComponent(noTs)}`,
        join(appDir, 'bin', 'provisioner.js'),
        '--version',
      ],
      { encoding: 'utf8', env: { ...process.env, PROVISIONER_FROM_SOURCE: '1' } },
    )
    expect(source.status).not.toBe(0)
    expect(source.stderr).toMatch(/loaded TypeScript/)
  })
})
