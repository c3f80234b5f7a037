import type { SimProduct, SimServiceStatus } from './model.ts'
import type { WhmcsSimulator } from './simulator.ts'

export interface SeedOptions {
  /** Services to create across the seeded products. */
  services: number
  /** Clients to spread them over (default: one per two services). */
  clients?: number
  /** Products of the provisioned kind (each with a Plan option and a Password field). Default 2. */
  products?: number
  /** Relative weights of service statuses. */
  statusWeights?: Partial<Record<SimServiceStatus, number>>
  /** PRNG seed, so a data set can be recreated exactly. */
  seed?: number
  plans?: readonly string[]
}

export interface SeededData {
  products: SimProduct[]
  /** The configurable option that carries the plan. */
  planOption: string
  /** The custom field that carries the first password. */
  passwordField: string
  plans: readonly string[]
  clientIds: number[]
}

const DEFAULT_WEIGHTS: Record<SimServiceStatus, number> = {
  Active: 70,
  Suspended: 8,
  Terminated: 6,
  Cancelled: 5,
  Pending: 6,
  Fraud: 1,
  Completed: 4,
}

/** mulberry32: small, fast and good enough for fixtures. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Linus']
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Dijkstra',
  'Liskov',
  'Knuth',
  'Allen',
  'Thompson',
  'Perlman',
  'Torvalds',
]

/**
 * Fills a simulator with a deterministic data set: products shaped like the Ticketz setup (a Plan
 * dropdown and a Password custom field), clients with owner users, and services across every status.
 * Cheap enough for 100 000 services in well under a second.
 */
export function seedSimulator(sim: WhmcsSimulator, options: SeedOptions): SeededData {
  const random = prng(options.seed ?? 42)
  const plans = options.plans ?? ['Basic', 'Pro', 'Enterprise']
  const products: SimProduct[] = []
  for (let i = 0; i < (options.products ?? 2); i++) {
    products.push(
      sim.createProduct({
        name: `Cloud Workspace ${i + 1}`,
        groupname: 'Workspaces',
        module: 'autorelease',
        customFields: [
          { name: 'Password', type: 'password', description: 'Password for the first login', required: true },
        ],
        configOptions: [{ name: 'Plan', type: 'dropdown', options: [...plans] }],
      }),
    )
  }
  const weights = { ...DEFAULT_WEIGHTS, ...options.statusWeights }
  const statuses = Object.entries(weights).filter(([, w]) => w > 0) as [SimServiceStatus, number][]
  const totalWeight = statuses.reduce((a, [, w]) => a + w, 0)
  const pickStatus = (): SimServiceStatus => {
    let r = random() * totalWeight
    for (const [s, w] of statuses) {
      r -= w
      if (r < 0) return s
    }
    return 'Active'
  }
  const clientCount = Math.max(1, options.clients ?? Math.ceil(options.services / 2))
  const clientIds: number[] = []
  for (let i = 0; i < clientCount; i++) {
    const first = FIRST[i % FIRST.length] as string
    const last = LAST[Math.floor(i / FIRST.length) % LAST.length] as string
    const c = sim.createClient({
      firstname: first,
      lastname: last,
      email: `client${sim.clients.size + 1}@example.test`,
    })
    clientIds.push(c.id)
  }
  const base = Date.parse(`${sim.today}T00:00:00Z`)
  for (let i = 0; i < options.services; i++) {
    const product = products[i % products.length] as SimProduct
    const plan = plans[Math.floor(random() * plans.length)] as string
    const status = pickStatus()
    const reg = new Date(base - Math.floor(random() * 700) * 86_400_000).toISOString().slice(0, 10)
    const due = new Date(base + Math.floor(random() * 30) * 86_400_000).toISOString().slice(0, 10)
    const password = `Pw${Math.floor(random() * 2 ** 32).toString(36)}x${i.toString(36)}`
    sim.createService({
      clientId: clientIds[i % clientIds.length] as number,
      pid: product.id,
      status,
      regdate: reg,
      nextduedate: due,
      username: `ws${i + 1}`,
      password,
      domain: `ws${i + 1}.example.test`,
      suspendreason: status === 'Suspended' ? 'Overdue on Payment' : '',
      options: { Plan: plan },
      fields: { Password: password },
    })
  }
  return { products, planOption: 'Plan', passwordField: 'Password', plans, clientIds }
}
