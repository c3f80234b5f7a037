import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../src/cli.ts'
import { ConfigError, loadConfig, parseConfig } from '../src/config.ts'

const good = {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
  servers: [{ id: 's1', connector: 'memory-panel', hostname: 'panel.example', password: '${PANEL_PW}' }],
  serverGroups: [{ id: 'g1', servers: ['s1'] }],
  products: [{ whmcsProductId: 1, connector: 'memory-panel', serverGroup: 'g1' }],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
  store: { encryptionKey: '${KEY}' },
}
const KEY = 'dGVzdC1rZXktZm9yLXBhbmVsa2l0LXByb3Zpc2lvISE='

function issuesOf(raw: unknown, env: Record<string, string> = { PANEL_PW: 'x-secret', KEY }) {
  try {
    parseConfig(raw, env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).issues
  }
  throw new Error('expected the config to be refused')
}

describe('configuration', () => {
  it('reads secrets from the environment and lists them for masking', () => {
    const { config, secrets } = parseConfig(good, { PANEL_PW: 'Sup3r-secret', KEY })
    expect(config.servers[0]?.password).toBe('Sup3r-secret')
    expect(secrets).toContain('Sup3r-secret')
    // The encryption key is a secret like the others.
    expect(secrets).toContain(KEY)
    expect(config.worker.concurrency).toBe(4)
  })

  it('explains every error with its path', () => {
    const issues = issuesOf(
      {
        ...good,
        servers: [
          { ...good.servers[0], port: 70000 },
          { id: 's1', connector: 'x', hostname: '' },
        ],
        serverGroups: [{ id: 'g1', servers: ['s1', 'nope'] }],
        products: [{ whmcsProductId: 1, connector: 'memory-panel', serverGroup: 'missing' }],
        http: { tokens: ['short'] },
        whmcs: { url: 'not a url', identifier: '' },
      },
      {},
    )
    const paths = issues.map((i) => i.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'servers[0].password',
        'servers[0].port',
        'servers[1].hostname',
        'http.tokens[0]',
        'store.encryptionKey',
        'whmcs.url',
        'whmcs.identifier',
        'whmcs.secret',
        // Reference errors are reported alongside the field errors, not after they are fixed.
        'serverGroups[0].servers[1]',
        'products[0].serverGroup',
      ]),
    )
    expect(
      issuesOf(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        { ...good, store: { encryptionKey: '${SHORT}' } },
        { PANEL_PW: 'x-secret', SHORT: 'too-short' },
      ).map((i) => i.path),
    ).toEqual(['store.encryptionKey'])
    expect(issues.find((i) => i.path === 'servers[0].password')?.message).toBe(
      'environment variable PANEL_PW is not set',
    )
  })

  it('takes the encryption key from the environment or a file, never from the file itself', () => {
    const literal = issuesOf({ ...good, store: { encryptionKey: KEY } })
    expect(literal.map((i) => `${i.path}: ${i.message}`)).toEqual([
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows an environment reference
      'store.encryptionKey: must not be written in the configuration file: use a ${NAME} environment reference or store.encryptionKeyFile',
    ])
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-key-'))
    writeFileSync(join(dir, 'store.key'), `${KEY}\n`, { mode: 0o600 })
    const fromFile = parseConfig(
      { ...good, store: { encryptionKeyFile: 'store.key' } },
      { PANEL_PW: 'p' },
      'p.yaml',
      dir,
    )
    expect(fromFile.config.store.encryptionKey).toBe(KEY)
    // The key read from the file is masked like every other secret.
    expect(fromFile.secrets).toContain(KEY)
    expect(
      issuesOf({ ...good, store: { encryptionKeyFile: join(dir, 'missing.key') } }).map(
        (i) => `${i.path}: ${i.message}`,
      ),
    ).toContain('store.encryptionKeyFile: cannot read the key file: ENOENT')
    expect(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      issuesOf({ ...good, store: { encryptionKey: '${KEY}', encryptionKeyFile: 'store.key' } }).map(
        (i) => i.path,
      ),
    ).toContain('store.encryptionKeyFile')
  })

  it('checks references between servers, groups and products', () => {
    const issues = issuesOf({
      ...good,
      serverGroups: [{ id: 'g1', servers: ['s1', 'nope'] }],
      products: [
        { whmcsProductId: 1, connector: 'memory-panel', serverGroup: 'missing' },
        { whmcsProductId: 1, connector: 'other', serverGroup: 'g1' },
      ],
    })
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual(
      expect.arrayContaining([
        'serverGroups[0].servers[1]: no server with id nope (known: s1)',
        'products[0].serverGroup: no server group with id missing',
        'products[1].whmcsProductId: product 1 is mapped twice',
        'products[1].serverGroup: server s1 in group g1 is for connector memory-panel, not other',
      ]),
    )
  })

  it('loads YAML files and reports unreadable or malformed ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-config-'))
    const file = join(dir, 'p.yaml')
    writeFileSync(
      file,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      'servers:\n  - id: s1\n    connector: memory-panel\n    hostname: h\nstore:\n  encryptionKey: ${KEY}\n',
    )
    expect((await loadConfig(file, { KEY })).config.servers[0]?.id).toBe('s1')
    writeFileSync(file, 'servers: [\n')
    await expect(loadConfig(file, {})).rejects.toThrow(/not valid YAML/)
    await expect(loadConfig(join(dir, 'missing.yaml'), {})).rejects.toThrow(/cannot read the file: ENOENT/)
  })

  it('`provisioner check` with a bad config prints every issue, exits 1 and creates no store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-check-'))
    const file = join(dir, 'p.json')
    writeFileSync(
      file,
      JSON.stringify({ ...good, store: { dataDir: join(dir, 'data') }, worker: { concurrency: 0 } }),
    )
    const out: string[] = []
    const code = await main(['check', '-c', file], {}, { out: (l) => out.push(l), err: (l) => out.push(l) })
    expect(code).toBe(1)
    const text = out.join('\n')
    expect(text).toContain('servers[0].password: environment variable PANEL_PW is not set')
    expect(text).toContain('worker.concurrency')
    const { existsSync } = await import('node:fs')
    expect(existsSync(join(dir, 'data'))).toBe(false)
  })
})
