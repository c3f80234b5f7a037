import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript source through the private export condition,
// so tests never need a build first. `import` is left out on purpose: vitest passes these conditions to
// Node, and with `import` a CommonJS package such as pg would `require()` the ESM build of pg-pool.
const conditions = ['@panelkit/source', 'node', 'module', 'default']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
