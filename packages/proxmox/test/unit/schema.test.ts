import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import { type EndpointDefinition, pathParamNames } from '../../src/endpoints/define.ts'
import { indexSchema, type SchemaNode } from '../../src/testing/schema-validation.ts'

// The official PVE 9.1 API schema, kept outside the repository at ../shared/data relative to the repo
// root (this file is packages/proxmox/test/unit/, five levels below the parent of the repo root).
const SCHEMA_URL = new URL('../../../../../shared/data/pve-apidata.json', import.meta.url)

describe('endpoint definitions against the official API schema', () => {
  // Deliberately not skipped when the file is missing: CI must see the definitions checked.
  const schema = indexSchema(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as SchemaNode[])

  it('the schema file is the full API (sanity)', () => {
    expect(schema.size).toBeGreaterThan(600)
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
      if (endpoint.returns === 'null') expect((entry?.returns as { type?: string })?.type).toBe('null')
    })
  }
})
