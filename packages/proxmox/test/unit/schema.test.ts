import { describe, expect, it } from 'vitest'
import {
  extractSchemaFacts,
  locateApidata,
  readApidata,
  routesUsed,
  SCHEMA_RELEASE,
} from '../../scripts/schema-facts.ts'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import { type EndpointDefinition, pathParamNames } from '../../src/endpoints/define.ts'
import { PVE_SCHEMA_FACTS, PVE_SCHEMA_RELEASE } from '../../src/endpoints/pve-schema.generated.ts'
import { ProxmoxSimulator } from '../../src/testing/simulator.ts'

// The facts generated from the official PVE 9.1 API schema live in the package
// (src/endpoints/pve-schema.generated.ts), so these checks run on a fresh clone.
describe('endpoint definitions against the official API schema (generated facts)', () => {
  const schema = new Map(Object.entries(PVE_SCHEMA_FACTS))

  it('the facts name the release they come from and cover every route used', () => {
    expect(PVE_SCHEMA_RELEASE).toBe(SCHEMA_RELEASE)
    expect([...schema.keys()].sort()).toEqual(routesUsed())
  })

  it('every route the simulator serves has schema facts', () => {
    const sim = new ProxmoxSimulator()
    for (const route of sim.routeKeys()) expect(schema.has(route), route).toBe(true)
  })

  for (const [name, endpoint] of Object.entries(ENDPOINTS) as [string, EndpointDefinition][]) {
    it(`${name}: ${endpoint.method} ${endpoint.path}`, () => {
      const entry = schema.get(`${endpoint.method} ${endpoint.path}`)
      expect(entry, `${endpoint.method} ${endpoint.path} is not in the schema`).toBeDefined()
      const properties = entry?.parameters?.properties ?? {}
      for (const [param, spec] of Object.entries(endpoint.params)) {
        const official = properties[param]
        expect(official, `${param} is not a parameter of ${endpoint.method} ${endpoint.path}`).toBeDefined()
        expect(spec.type, `type of ${param}`).toBe(official?.type)
        const officiallyOptional = Boolean(official?.optional)
        if (!officiallyOptional)
          expect(spec.optional ?? false, `${param} is required by the schema`).toBe(false)
        const inPath = pathParamNames(endpoint.path).includes(param)
        if (!param.endsWith('[n]') && officiallyOptional && !inPath)
          expect(spec.optional ?? false, `${param} is optional in the schema`).toBe(true)
      }
      for (const pathParam of pathParamNames(endpoint.path)) {
        expect(endpoint.params[pathParam], `path parameter ${pathParam} is declared`).toBeDefined()
      }
      if (endpoint.returns === 'upid') expect(entry?.returns).toMatchObject({ type: 'string' })
      if (endpoint.returns === 'null') expect(entry?.returns?.type).toBe('null')
    })
  }
})

// Freshness against the package's own code, on every machine: rebuilt into the schema's tree shape, the
// generated facts must extract to themselves — a route added to the catalog or the simulator without
// `schema:extract`, a fact key the extractor no longer keeps, or a hand edit out of its form fails here.
describe('generated schema facts are current for this package', () => {
  it('extract to themselves: the routes used, in the extractor form', () => {
    const tree = Object.entries(PVE_SCHEMA_FACTS).map(([route, facts]) => {
      const space = route.indexOf(' ')
      return { path: route.slice(space + 1), info: { [route.slice(0, space)]: facts } }
    })
    expect(extractSchemaFacts(tree)).toEqual(PVE_SCHEMA_FACTS)
  })
})

// Freshness against upstream: only where the full official schema is at hand (PANELKIT_PVE_APIDATA, or
// ../shared/data/pve-apidata.json beside the repository); a fresh clone has neither.
const apidata = locateApidata()
if (apidata.found) {
  describe('generated schema facts are current', () => {
    it(`match a fresh extraction from ${apidata.path}`, () => {
      expect(PVE_SCHEMA_FACTS).toEqual(extractSchemaFacts(readApidata(apidata.path)))
    })
  })
} else {
  console.log(
    `schema freshness test not registered: no official schema at ${apidata.path} (set PANELKIT_PVE_APIDATA to run it)`,
  )
}
