import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { parseSecretKey } from '../src/secrets.ts'
import { Store } from '../src/store/store.ts'

/** The encryption key every test store and config uses (a fixed one: tests read their own files). */
export const TEST_KEY = 'dGVzdC1rZXktZm9yLXBhbmVsa2l0LXByb3Zpc2lvISE='
export const TEST_KEY_BYTES = parseSecretKey(TEST_KEY) as Buffer

/**
 * The stores every end-to-end test runs against. PostgreSQL comes from PANELKIT_TEST_PG_URL (set by
 * `.ci/run`); each store gets its own schema so parallel runs never collide. In CI a missing URL is a
 * failure, elsewhere the PostgreSQL cases are left out with a printed reason.
 */
export const PG_URL = process.env.PANELKIT_TEST_PG_URL
if (!PG_URL) {
  if (process.env.CI === 'true') {
    throw new Error('PANELKIT_TEST_PG_URL is not set, and CI=true: the PostgreSQL tests must run in CI')
  }
  console.warn('PANELKIT_TEST_PG_URL is not set: PostgreSQL end-to-end tests are left out of this run')
}

export type StoreKind = 'sqlite' | 'postgres'
export const STORE_KINDS: StoreKind[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite']

export function uniqueSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`
}

export async function dropSchema(schema: string): Promise<void> {
  if (!PG_URL) return
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  try {
    await client.query(`drop schema if exists ${schema} cascade`)
  } finally {
    await client.end()
  }
}

/** A fresh, migrated store of the given kind and a function that removes it. */
export async function openTestStore(
  kind: StoreKind,
  options: { dataDir?: string; schema?: string } = {},
): Promise<{ store: Store; cleanup: () => Promise<void>; url?: string; schema?: string }> {
  if (kind === 'sqlite') {
    const store = await Store.open({
      ...(options.dataDir ? { dataDir: options.dataDir } : { file: ':memory:' }),
      encryptionKey: TEST_KEY_BYTES,
    })
    return { store, cleanup: () => store.close() }
  }
  const schema = options.schema ?? uniqueSchema()
  const store = await Store.open({ url: PG_URL, schema, encryptionKey: TEST_KEY_BYTES })
  return {
    store,
    url: PG_URL as string,
    schema,
    cleanup: async () => {
      await store.close()
      await dropSchema(schema)
    },
  }
}
