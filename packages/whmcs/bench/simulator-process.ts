import { createWhmcsSimulator, seedSimulator } from '../src/testing/index.ts'

/**
 * Runs a seeded simulator in its own process, so a benchmark measures the client's time and memory
 * and not the fake server's. Prints one JSON line with the address, CA and credentials, then serves
 * until stdin closes.
 */
const services = Number(process.argv[2] ?? 100_000)
const sim = await createWhmcsSimulator({ quirks: { clientsProductsDefaultLimit: 25 } })
const started = performance.now()
const seeded = seedSimulator(sim, { services })
const seedMs = performance.now() - started
process.stdout.write(
  `${JSON.stringify({
    url: sim.url,
    ca: sim.ca,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    productIds: seeded.products.map((p) => p.id),
    planOption: seeded.planOption,
    passwordField: seeded.passwordField,
    plans: seeded.plans,
    seedMs,
  })}\n`,
)
process.stdin.resume()
process.stdin.on('end', () => {
  void sim.close().then(() => process.exit(0))
})
