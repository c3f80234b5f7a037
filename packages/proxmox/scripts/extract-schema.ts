/**
 * `pnpm --filter @panelkit/proxmox schema:extract`: regenerates src/endpoints/pve-schema.generated.ts
 * from the official schema named by PANELKIT_PVE_APIDATA, else ../shared/data/pve-apidata.json beside
 * the repository root.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  extractSchemaFacts,
  locateApidata,
  readApidata,
  renderFactsModule,
  routesUsed,
} from './schema-facts.ts'

const { path, found } = locateApidata()
if (!found) {
  console.error(
    `schema:extract: ${path} does not exist (set PANELKIT_PVE_APIDATA to the official apidata JSON)`,
  )
  process.exit(1)
}
const target = fileURLToPath(new URL('../src/endpoints/pve-schema.generated.ts', import.meta.url))
writeFileSync(target, renderFactsModule(extractSchemaFacts(readApidata(path)), basename(path)))
execFileSync('npx', ['biome', 'format', '--write', target], { stdio: 'inherit' })
console.log(
  `schema:extract: ${routesUsed().length} endpoints written to src/endpoints/pve-schema.generated.ts`,
)
