export {
  AxigenSimulator,
  type SimulatorFaults,
  type SimulatorOptions,
  startAxigenSimulator,
  type TranscriptEntry,
} from './simulator.ts'
export {
  cloneAccount,
  DEFAULT_SERVICES,
  effectiveServices,
  type SimAccount,
  type SimClass,
  type SimDomain,
  type SimGroup,
  type SimList,
  type SimUsage,
} from './state.ts'
export { DEFAULT_TEXTS, formatText, type SimulatorTexts } from './texts.ts'
export {
  ALTERNATE_TEXTS,
  type DomainColumn,
  NAMED_VARIATIONS,
  type NamedVariation,
  type SimulatorVariations,
} from './variations.ts'
