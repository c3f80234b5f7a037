/**
 * Routes the simulator serves that the client has no definition for; their schema facts are
 * generated too (scripts/schema-facts.ts), so the simulator validates them like the rest.
 */
export const SIMULATOR_ONLY_ROUTES: readonly string[] = [
  'POST /nodes/{node}/qemu/{vmid}/status/suspend',
  'POST /nodes/{node}/qemu/{vmid}/status/resume',
]
