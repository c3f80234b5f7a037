export {
  createProxmoxKvmConnector,
  credentialsFor,
  type ProxmoxKvmConnectorOptions,
  proxmoxKvmConnector,
  tlsFor,
} from './connector.ts'
export { groupIsos, type IsoImage, isoGroup, OTHER_GROUP } from './iso.ts'
export { ipconfigFor, systemDiskKey } from './package-steps.ts'
export { changePackagePipeline, type DeployData, deployPipeline, reinstallPipeline } from './pipelines.ts'
export { effectiveSettings, type KvmSettings, kvmSettings, OVERRIDABLE } from './settings.ts'
export {
  bigIntToIpv6,
  type DnsProvider,
  type DnsRecord,
  type IpLease,
  type IpPool,
  type IpPoolConfig,
  type IpRangeConfig,
  ipv6ToBigInt,
  MemoryDnsProvider,
  MemoryIpPool,
  MemoryVmidReservations,
  type VmidReservations,
} from './stores.ts'
export {
  checkSshKeys,
  descriptionFor,
  hostnameFor,
  MANAGED_TAG,
  type ReadyEvent,
  SUSPENDED_TAG,
  serviceIdFromDescription,
  serviceTag,
} from './vm.ts'
