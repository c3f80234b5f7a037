import type { Writable } from 'node:stream'
import {
  createCallRecorder,
  createRedactor,
  type ModuleLogSink,
  type Redactor,
  toFailure,
} from '@panelkit/core'
import { createWhmcsClient, type WhmcsClient } from '@panelkit/whmcs'
import { type Config, ConfigError } from './config.ts'
import { productSettingsIssues } from './config-lint.ts'
import { builtinConnectors } from './connectors.ts'
import { type ConnectorRegistration, Engine, type EngineEvent } from './engine/engine.ts'
import { createLogger, type LogFormat, type Logger, type LogLevel } from './logger.ts'
import { parseSecretKey } from './secrets.ts'
import { Store, type StoreOptions } from './store/store.ts'

export interface AppOptions {
  config: Config
  /** Values to mask everywhere (from the environment references in the config). */
  secrets?: readonly string[]
  /** The WHMCS client; defaults to one built from `config.whmcs` (none when that is absent). */
  whmcs?: WhmcsClient
  /** Connectors beyond (or instead of, with `builtins: false`) the built-in ones. */
  connectors?: readonly ConnectorRegistration[] | ((store: Store) => readonly ConnectorRegistration[])
  builtins?: boolean
  /** Options for the built-in connectors (a DNS provider, Proxmox client tuning). */
  builtinOptions?: Parameters<typeof builtinConnectors>[2]
  /** Where structured logs go (stderr by default, `null` for none). */
  logStream?: Pick<Writable, 'write'> | null
  logLevel?: LogLevel
  /** JSON lines (the default) or readable lines; the CLI picks readable on a terminal. */
  logFormat?: LogFormat
  store?: Partial<StoreOptions>
  /** Seed the configured IP pools into the store (the default); `false` leaves the store as it is. */
  seedPools?: boolean
  owner?: string
  onEvent?: (event: EngineEvent) => void
}

export interface App {
  config: Config
  store: Store
  engine: Engine
  redactor: Redactor
  logger: Logger
  /**
   * Registers work to do when the app closes (timers, listeners, deliveries under way), before the
   * engine and the store close. Hooks run once, the last registered first; one that fails is logged
   * and the rest still run. Returns a function that unregisters the hook.
   */
  onClose(hook: () => void | Promise<void>): () => void
  close(): Promise<void>
}

/** Opens the store, seeds the IP pools and builds the engine with every connector the config uses. */
export async function createApp(options: AppOptions): Promise<App> {
  const { config } = options
  const redactor = createRedactor({ values: [...(options.secrets ?? [])] })
  const logger = createLogger({
    redactor,
    ...(options.logStream !== undefined ? { stream: options.logStream } : {}),
    level: options.logLevel ?? 'info',
    ...(options.logFormat ? { format: options.logFormat } : {}),
    base: { app: 'provisioner' },
  })
  const store = await Store.open({
    url: config.store.url,
    dataDir: config.store.dataDir,
    synchronous: config.store.synchronous,
    ...(config.store.schema ? { schema: config.store.schema } : {}),
    encryptionKey: parseSecretKey(config.store.encryptionKey),
    ...options.store,
  })
  try {
    for (const pool of options.seedPools === false ? [] : config.ipPools) {
      // IPv6 addresses live in their own pool (`<id>#v6`), as the Proxmox connector asks per family.
      const v4 = pool.addresses.filter((a) => !a.includes(':'))
      const v6 = pool.addresses.filter((a) => a.includes(':'))
      if (v4.length) await store.ipPool(pool.id).seed(v4)
      if (v6.length) await store.ipPool(`${pool.id}#v6`).seed(v6)
    }
    const extra =
      typeof options.connectors === 'function' ? options.connectors(store) : (options.connectors ?? [])
    const connectors = [...(options.builtins === false ? [] : builtinConnectors(store, config)), ...extra]
    // Each product's and plan's settings against its connector's own declaration, before any work.
    const settingIssues = productSettingsIssues(
      config.products,
      new Map(connectors.map((c) => [c.definition.id as string, c.definition])),
    )
    if (settingIssues.length > 0) throw new ConfigError('the configuration', settingIssues)
    const moduleLog = store.moduleLog(redactor)
    const whmcs = options.whmcs ?? whmcsFromConfig(config, redactor, moduleLog)
    const engine = new Engine({
      store,
      config,
      connectors,
      whmcs,
      redactor,
      logger,
      moduleLog,
      ...(options.owner !== undefined ? { owner: options.owner } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    })
    const hooks: (() => void | Promise<void>)[] = []
    let closing: Promise<void> | undefined
    return {
      config,
      store,
      engine,
      redactor,
      logger,
      onClose(hook) {
        hooks.push(hook)
        return () => {
          const i = hooks.indexOf(hook)
          if (i >= 0) hooks.splice(i, 1)
        }
      },
      close() {
        closing ??= (async () => {
          for (const hook of hooks.splice(0).reverse()) {
            try {
              await hook()
            } catch (error) {
              logger.error('a close hook failed', { error: toFailure(error, redactor) })
            }
          }
          await engine.close()
          await store.close()
        })()
        return closing
      },
    }
  } catch (error) {
    await store.close()
    throw error
  }
}

/**
 * The WHMCS client for `config.whmcs`, or none when the section is absent. Its calls go to the module
 * log like every connector's, with the API secret and access key masked.
 */
export function whmcsFromConfig(
  config: Config,
  redactor: Redactor,
  sink?: ModuleLogSink,
): WhmcsClient | undefined {
  const w = config.whmcs
  if (!w) return undefined
  redactor.addValue(w.secret)
  if (w.accessKey) redactor.addValue(w.accessKey)
  return createWhmcsClient({
    url: w.url,
    identifier: w.identifier,
    secret: w.secret,
    ...(w.accessKey ? { accessKey: w.accessKey } : {}),
    ...(w.ca ? { tls: { ca: w.ca } } : {}),
    recorder: createCallRecorder({ connector: 'whmcs-client', redactor, ...(sink ? { sink } : {}) }),
  })
}
