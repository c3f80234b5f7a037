import { defineConfig } from 'vitest/config'

// Workspace packages resolve to their TypeScript source (the private export condition), as in the
// provisioner; the PHP tests spawn real processes, so they get generous time limits.
const conditions = ['@panelkit/source', 'node', 'module', 'default']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
})
