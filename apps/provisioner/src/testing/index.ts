export { MemoryBilling } from './memory-billing.ts'
