import { memoryPanelConnector, registerMemoryPanel, remoteMemoryPanel } from '../../src/testing/index.ts'

/**
 * The contract suite's kill children run this: the example connector, talking over HTTP to the panel
 * that lives in the test's process (`serveMemoryPanel`), under the host name the services name.
 */
export function connector(params: unknown) {
  const { hostname, url } = params as { hostname: string; url: string }
  registerMemoryPanel(hostname, remoteMemoryPanel(url))
  return memoryPanelConnector
}
