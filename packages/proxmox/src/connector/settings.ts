import { type SettingsOf, setting } from '@panelkit/core'

/** The product settings of the KVM connector (WHMCS's ConfigOptions, in order). */
export const kvmSettings = {
  // Dropdowns without fixed options accept any value; their choices come from the cluster (option-loaders.ts).
  template: setting.dropdown({
    label: 'Template',
    description: 'VMID or name of the cloud-init template to clone',
    required: true,
  }),
  templates: setting.text({
    label: 'Reinstall templates',
    description: 'OS choices for reinstall: `debian-12=9000, ubuntu-24.04=9001`',
    default: '',
  }),
  node: setting.dropdown({
    label: 'Target node',
    description: '`auto` places by free RAM, CPU and storage',
    default: 'auto',
  }),
  storage: setting.dropdown({ label: 'Storage', default: 'local-lvm' }),
  linkedClone: setting.yesNo({ label: 'Linked clone', default: false }),
  sockets: setting.number({ label: 'CPU sockets', integer: true, min: 1, max: 4, default: 1 }),
  cores: setting.number({ label: 'CPU cores', integer: true, min: 1, max: 128, default: 1 }),
  memoryMb: setting.number({ label: 'Memory', unit: 'MiB', integer: true, min: 16, default: 1024 }),
  diskGb: setting.number({ label: 'System disk', unit: 'GiB', integer: true, min: 1, default: 10 }),
  diskMbpsRd: setting.number({ label: 'Disk read limit', unit: 'MB/s', min: 0, default: 0 }),
  diskMbpsWr: setting.number({ label: 'Disk write limit', unit: 'MB/s', min: 0, default: 0 }),
  diskIopsRd: setting.number({ label: 'Disk read IOPS', integer: true, min: 0, default: 0 }),
  diskIopsWr: setting.number({ label: 'Disk write IOPS', integer: true, min: 0, default: 0 }),
  additionalDiskGb: setting.number({
    label: 'Additional disk',
    unit: 'GiB',
    integer: true,
    min: 0,
    default: 0,
  }),
  additionalDiskStorage: setting.dropdown({
    label: 'Additional disk storage',
    description: 'empty: same as the system disk',
    default: '',
  }),
  additionalDiskMbps: setting.number({ label: 'Additional disk MB/s (read and write)', min: 0, default: 0 }),
  additionalDiskIops: setting.number({
    label: 'Additional disk IOPS (read and write)',
    integer: true,
    min: 0,
    default: 0,
  }),
  bridge: setting.text({ label: 'Bridge', default: 'vmbr0', pattern: /^[A-Za-z][A-Za-z0-9_.-]{0,15}$/ }),
  vlan: setting.number({
    label: 'VLAN tag',
    description: '0: untagged',
    integer: true,
    min: 0,
    max: 4094,
    default: 0,
  }),
  rateMbps: setting.number({ label: 'Network rate limit', unit: 'MB/s', min: 0, default: 0 }),
  firewall: setting.yesNo({ label: 'Firewall', default: true }),
  antiSpoofing: setting.yesNo({ label: 'Anti-spoofing (IP filter)', default: true }),
  policyIn: setting.dropdown({
    label: 'Inbound policy',
    options: ['ACCEPT', 'DROP', 'REJECT'],
    default: 'ACCEPT',
  }),
  policyOut: setting.dropdown({
    label: 'Outbound policy',
    options: ['ACCEPT', 'DROP', 'REJECT'],
    default: 'ACCEPT',
  }),
  ipPool: setting.text({ label: 'IP pool', description: 'empty: DHCP (no address management)', default: '' }),
  ipv6: setting.yesNo({ label: 'IPv6 address', default: false }),
  dnsZone: setting.text({ label: 'DNS zone', description: 'empty: no DNS records', default: '' }),
  hostnamePrefix: setting.text({
    label: 'Hostname prefix',
    default: 'vps',
    pattern: /^[a-z][a-z0-9-]{0,20}$/,
  }),
  nameservers: setting.text({ label: 'Name servers', default: '1.1.1.1 9.9.9.9' }),
  ciUser: setting.text({
    label: 'Cloud-init user',
    description: 'default: the service username, else root',
    default: '',
  }),
  snapshotLimit: setting.number({ label: 'Snapshot limit', integer: true, min: 0, max: 50, default: 3 }),
  snapshotLifetimeDays: setting.number({
    label: 'Snapshot lifetime',
    unit: 'days',
    integer: true,
    min: 1,
    max: 10,
    default: 7,
  }),
  backupSlots: setting.number({ label: 'Backup slots', integer: true, min: 0, max: 50, default: 2 }),
  backupStorage: setting.dropdown({ label: 'Backup storage', default: 'local' }),
  isoStorage: setting.dropdown({
    label: 'ISO storage',
    description: 'empty: every storage with ISO content',
    default: '',
  }),
  consoleUrl: setting.text({
    label: 'noVNC proxy URL',
    description: 'Base URL of the noVNC proxy that turns a vncproxy ticket into a console',
    default: '',
  }),
}

export type KvmSettings = SettingsOf<typeof kvmSettings>

/** Settings a WHMCS configurable option may override per service (`cores`, `memoryMb`, …). */
export const OVERRIDABLE = [
  'sockets',
  'cores',
  'memoryMb',
  'diskGb',
  'additionalDiskGb',
  'rateMbps',
  'backupSlots',
  'snapshotLimit',
  'template',
] as const

export function effectiveSettings(
  settings: KvmSettings,
  configOptions: Record<string, string | number>,
): KvmSettings {
  const out = { ...settings } as Record<string, unknown>
  for (const key of OVERRIDABLE) {
    const value = configOptions[key]
    if (value === undefined || value === '') continue
    if (key === 'template') out[key] = String(value)
    else if (Number.isFinite(Number(value)) && Number(value) >= 0) out[key] = Number(value)
  }
  return out as KvmSettings
}
