import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript source through the private export condition,
// so tests never need a build first.
const conditions = ['@panelkit/source', 'node', 'import', 'module', 'default']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
