export { DEFAULT_BEHAVIOUR, type SimulatorBehaviour } from './behaviour.ts'
export {
  ComputeStacksSimulator,
  type ComputeStacksSimulatorOptions,
  type FaultMatch,
  type SimBillingPlan,
  type SimFault,
  type SimLocation,
  type SimRequestRecord,
  type SimUsage,
  type SimUser,
  type SimUserGroup,
  startComputeStacksSimulator,
} from './simulator.ts'
