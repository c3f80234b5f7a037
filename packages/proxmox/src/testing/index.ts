export type { SimFirewallRule, SimNode, SimSnapshot, SimStorage, SimVm, SimVolume } from './cluster-state.ts'
export {
  indexSchema,
  loadSchema,
  type SchemaMethod,
  type SchemaNode,
  schemaFacts,
  validateParams,
} from './schema-validation.ts'
export {
  DEFAULT_BEHAVIOUR,
  ProxmoxSimulator,
  type ProxmoxSimulatorOptions,
  type SimulatorBehaviour,
  type SimulatorTemplate,
  startProxmoxSimulator,
} from './simulator.ts'
