import { PVE_SCHEMA_FACTS } from './endpoints/pve-schema.generated.ts'
import type { SchemaProperty } from './endpoints/schema-facts-types.ts'

/**
 * The wire codec of the Proxmox VE API, with no I/O: form bodies, 1/0 booleans, numbered options,
 * property strings (`virtio=AA:..,bridge=vmbr0`), the doubly-encoded `sshkeys`, sizes. Shared by the
 * client and the simulator so both sides agree on every quirk.
 */

export type ParamValue = string | number | boolean | undefined | null | readonly (string | number)[]
export type Params = Record<string, ParamValue>

/** One parameter value as the server's form decoder expects it: booleans are only `1` and `0`. */
export function encodeValue(value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? '1' : '0'
  return String(value)
}

/** `application/x-www-form-urlencoded` (also used for query strings); undefined and null are left out. */
export function encodeForm(params: Params): string {
  const out = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue
    if (Array.isArray(value)) {
      for (const item of value as readonly (string | number)[]) out.append(key, encodeValue(item))
    } else out.append(key, encodeValue(value as string | number | boolean))
  }
  return out.toString()
}

/** The inverse of `encodeForm` as the server does it: `&` or `;` separators, `+` is a space, repeated keys become arrays. */
export function decodeForm(text: string): Record<string, string | string[]> {
  const out = Object.create(null) as Record<string, string | string[]>
  for (const pair of text.split(/[&;]/)) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const rawKey = eq === -1 ? pair : pair.slice(0, eq)
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1)
    const key = decodeURIComponent(rawKey.replace(/\+/g, ' '))
    const value = decodeURIComponent(rawValue.replace(/\+/g, ' '))
    const existing = Object.hasOwn(out, key) ? out[key] : undefined
    if (existing === undefined) out[key] = value
    else out[key] = Array.isArray(existing) ? [...existing, value] : [existing, value]
  }
  return out
}

/**
 * Index ranges of the numbered options, from qemu-server's limits (the schema only shows `net[n]`).
 * `ipconfig` follows `net`.
 */
export const INDEXED_OPTION_LIMITS: Readonly<Record<string, number>> = Object.freeze({
  net: 31,
  ipconfig: 31,
  scsi: 30,
  virtio: 15,
  sata: 5,
  ide: 3,
  unused: 255,
  serial: 3,
  hostpci: 15,
  usb: 29,
  parallel: 2,
  numa: 7,
  virtiofs: 9,
})

/** `net3` → `{ base: 'net', index: 3 }`; undefined for anything that is not a numbered option. */
export function splitIndexedKey(key: string): { base: string; index: number } | undefined {
  const m = /^([a-z]+)(\d+)$/.exec(key)
  if (!m) return undefined
  const base = m[1] as string
  const max = INDEXED_OPTION_LIMITS[base]
  if (max === undefined) return undefined
  const index = Number(m[2])
  if (String(index) !== m[2] || index > max) return undefined
  return { base, index }
}

/** The wire key of a numbered option, refusing indices the server would reject. */
export function indexedKey(base: string, index: number): string {
  const max = INDEXED_OPTION_LIMITS[base]
  if (max === undefined) throw new RangeError(`${base} is not a numbered option`)
  if (!Number.isInteger(index) || index < 0 || index > max) {
    throw new RangeError(`${base}${index}: the index must be 0 to ${max}`)
  }
  return `${base}${index}`
}

/** Spreads a list into numbered options: `indexed('net', [a, b])` → `{ net0: a, net1: b }`. */
export function indexed(
  base: string,
  values: readonly (string | undefined)[],
  start = 0,
): Record<string, string> {
  const out: Record<string, string> = {}
  values.forEach((v, i) => {
    if (v !== undefined) out[indexedKey(base, start + i)] = v
  })
  return out
}

/** The numbered options of one kind present in a config, in index order. */
export function listIndexed(
  config: Record<string, unknown>,
  base: string,
): { key: string; index: number; value: string }[] {
  const out: { key: string; index: number; value: string }[] = []
  for (const [key, value] of Object.entries(config)) {
    const split = splitIndexedKey(key)
    if (split?.base === base && typeof value === 'string') out.push({ key, index: split.index, value })
  }
  return out.sort((a, b) => a.index - b.index)
}

/**
 * `sshkeys` has format `urlencoded`: the server accepts only `[-%a-zA-Z0-9_.!~*'()]`, which is what
 * `encodeURIComponent` leaves alone. Keys are one per line. The form encoder then encodes the `%`
 * again, which is the correct wire form (clients using `quote_plus` or leaving `/` or `:` fail).
 */
export function encodeSshKeys(keys: string | readonly string[]): string {
  const list = (typeof keys === 'string' ? keys.split(/\r?\n/) : [...keys])
    .map((k) => k.trim())
    .filter(Boolean)
  return encodeURIComponent(list.join('\n'))
}

export const URLENCODED_PATTERN = /^[-%a-zA-Z0-9_.!~*'()]*$/

export function decodeSshKeys(value: string): string[] {
  if (!URLENCODED_PATTERN.test(value)) throw new Error(`invalid urlencoded string: ${value}`)
  return decodeURIComponent(value)
    .split('\n')
    .map((k) => k.trim())
    .filter(Boolean)
}

// ---- property strings ------------------------------------------------------------------------

/** An ordered `key=value` map; order is kept so a string re-formats the way the server wrote it. */
export type PropertyMap = Map<string, string>

/**
 * Parses `a=1,b=2` (with an optional default key for a leading bare value, e.g. `file` for drives).
 * Throws on a duplicate key, as the server does.
 */
export function parsePropertyString(text: string, defaultKey?: string): PropertyMap {
  const out: PropertyMap = new Map()
  if (text === '') return out
  text.split(',').forEach((part, i) => {
    const eq = part.indexOf('=')
    let key: string
    let value: string
    if (eq === -1) {
      if (i !== 0 || defaultKey === undefined) throw new Error(`format error: value without key '${part}'`)
      key = defaultKey
      value = part
    } else {
      key = part.slice(0, eq)
      value = part.slice(eq + 1)
    }
    if (out.has(key)) throw new Error(`duplicate key in comma-separated list property: ${key}`)
    out.set(key, value)
  })
  return out
}

/** Formats a property map; the default key (when given and first) is written bare. */
export function formatPropertyString(
  map: PropertyMap | Record<string, string | number | boolean | undefined>,
  defaultKey?: string,
): string {
  const entries = map instanceof Map ? [...map.entries()] : Object.entries(map)
  const parts: string[] = []
  for (const [key, raw] of entries) {
    if (raw === undefined) continue
    const value = typeof raw === 'boolean' ? (raw ? '1' : '0') : String(raw)
    if (value.includes(',')) throw new Error(`property ${key} may not contain a comma`)
    parts.push(key === defaultKey && parts.length === 0 ? value : `${key}=${value}`)
  }
  return parts.join(',')
}

// ---- canonical property strings ---------------------------------------------------------------

/** The sub-key format of a VM config option (`net3` → the schema's `net[n]` format), from the schema facts. */
export function configOptionFormat(key: string): Record<string, SchemaProperty> | undefined {
  const properties = PVE_SCHEMA_FACTS['POST /nodes/{node}/qemu/{vmid}/config']?.parameters?.properties ?? {}
  const m = /^([a-z]+)\d+$/.exec(key)
  const prop = properties[key] ?? (m ? properties[`${m[1]}[n]`] : undefined)
  return prop && typeof prop.format === 'object' ? prop.format : undefined
}

/**
 * Parses a property string the way pve-common does (`src/PVE/JSONSchema.pm` `parse_property_string`):
 * a bare first value belongs to the format's `default_key`; a key that is a `keyAlias` spelling
 * (`virtio=AA:…` in a `netN`) sets the aliased key (`model=virtio`) and its value goes to the alias
 * target (`macaddr`). Unknown keys are kept as they are.
 */
export function parsePropertyStringWith(text: string, format: Record<string, SchemaProperty>): PropertyMap {
  const defaultKey = Object.keys(format).find((k) => format[k]?.default_key)
  const raw = parsePropertyString(text, defaultKey)
  const out: PropertyMap = new Map()
  for (const [key, value] of raw) {
    const spec = format[key]
    if (spec?.alias && spec.keyAlias) {
      out.set(spec.keyAlias, key)
      out.set(spec.alias, value)
    } else out.set(key, value)
  }
  return out
}

/**
 * Prints a property string in PVE's canonical order (pve-common `src/PVE/JSONSchema.pm`
 * `print_property_string`): the default key first (bare, or `value=alias` when a `keyAlias` combines
 * it, as `virtio=BC:24:11:…`), then the required keys sorted, then every other key sorted (Perl
 * `sort`, i.e. by code unit). Keys unknown to the format are sorted in with the rest.
 */
export function printPropertyString(
  map: PropertyMap | Record<string, string | number | boolean | undefined>,
  format: Record<string, SchemaProperty>,
): string {
  const data = new Map<string, string>()
  for (const [key, raw] of map instanceof Map ? map.entries() : Object.entries(map)) {
    if (raw === undefined) continue
    const value = typeof raw === 'boolean' ? (raw ? '1' : '0') : String(raw)
    if (value.includes(',')) throw new Error(`property ${key} may not contain a comma`)
    data.set(key, value)
  }
  const defaultKey = Object.keys(format).find((k) => format[k]?.default_key)
  const keyAliasOf = new Map<string, string>()
  for (const spec of Object.values(format))
    if (spec.alias && spec.keyAlias) keyAliasOf.set(spec.keyAlias, spec.alias)
  const parts: string[] = []
  const done = new Set<string>()
  const add = (key: string, isDefault: boolean) => {
    if (done.has(key)) return
    done.add(key)
    const value = data.get(key)
    if (value === undefined) return
    const combine = keyAliasOf.get(key)
    const combined = combine !== undefined ? data.get(combine) : undefined
    if (combine !== undefined && combined !== undefined) {
      parts.push(`${value}=${combined}`)
      done.add(combine)
      return
    }
    parts.push(isDefault ? value : `${key}=${value}`)
  }
  if (defaultKey !== undefined) add(defaultKey, true)
  const sorted = [...data.keys()].sort()
  for (const key of sorted) {
    const spec = format[key]
    if (spec && !spec.optional && !spec.alias) add(key, false)
  }
  for (const key of sorted) add(key, false)
  return parts.join(',')
}

// ---- network devices ----------------------------------------------------------------------------

const NET_FORMAT = configOptionFormat('net0') ?? {}

/**
 * Every NIC model the API accepts, from the schema's `net[n]` `model` enum (PVE 9.1: e1000, the three
 * e1000-8254x variants, e1000e, i8255x, ne2k, pcnet, rtl8139, virtio, vmxnet3).
 */
export const NET_MODELS: readonly string[] = Object.freeze([...(NET_FORMAT.model?.enum ?? [])])

export interface NetDevice {
  model: string
  macaddr?: string
  bridge?: string
  tag?: number
  rate?: number
  firewall?: boolean
  /** Every other sub-key as the server wrote it. */
  extra: Record<string, string>
}

const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/

/** Parses `virtio=AA:BB:..,bridge=vmbr0,tag=10` (also the `model=virtio,macaddr=…` long form). */
export function parseNet(text: string): NetDevice {
  const map = parsePropertyString(text, 'model')
  let model: string | undefined
  let macaddr: string | undefined
  const extra: Record<string, string> = {}
  const device: Partial<NetDevice> = {}
  for (const [key, value] of map) {
    if ((NET_MODELS as readonly string[]).includes(key)) {
      model = key
      if (value !== '') macaddr = value
    } else if (key === 'model') model = value
    else if (key === 'macaddr') macaddr = value
    else if (key === 'bridge') device.bridge = value
    else if (key === 'tag') device.tag = Number(value)
    else if (key === 'rate') device.rate = Number(value)
    else if (key === 'firewall') device.firewall = value === '1'
    else extra[key] = value
  }
  if (!model) {
    // A model newer than this schema (`newmodel=BC:24:11:…` first): keep it rather than fail.
    const [firstKey, firstValue] = [...map.entries()][0] ?? []
    if (firstKey !== undefined && firstValue !== undefined && MAC.test(firstValue) && extra[firstKey]) {
      model = firstKey
      macaddr = firstValue
      delete extra[firstKey]
    }
  }
  if (!model) throw new Error(`format error: net device without a model: ${text}`)
  if (macaddr !== undefined && !MAC.test(macaddr))
    throw new Error(`format error: invalid MAC address ${macaddr}`)
  const out: NetDevice = { model, extra }
  if (macaddr !== undefined) out.macaddr = macaddr.toUpperCase()
  if (device.bridge !== undefined) out.bridge = device.bridge
  if (device.tag !== undefined) out.tag = device.tag
  if (device.rate !== undefined) out.rate = device.rate
  if (device.firewall !== undefined) out.firewall = device.firewall
  return out
}

/**
 * The short form with the MAC in the model key (`virtio=BC:24:11:…`), so the server keeps the
 * address, in PVE's canonical order (qemu-server `src/PVE/QemuServer/Network.pm` `print_net` →
 * `print_property_string`): model=MAC first, then the other keys sorted.
 */
export function formatNet(device: NetDevice): string {
  return printPropertyString(
    {
      ...device.extra,
      model: device.model,
      macaddr: device.macaddr,
      bridge: device.bridge,
      firewall: device.firewall,
      rate: device.rate,
      tag: device.tag,
    },
    NET_FORMAT,
  )
}

/**
 * Whether two `netN` strings describe the same device: parsed values compared (MAC case-insensitive,
 * numbers as numbers, booleans as 0/1), never the raw text, since PVE rewrites the string its own way.
 */
export function sameNet(a: string, b: string): boolean {
  const x = parseNet(a)
  const y = parseNet(b)
  const num = (v: number | undefined) => (v === undefined ? undefined : Number(v))
  if (x.model !== y.model) return false
  if ((x.macaddr ?? '').toUpperCase() !== (y.macaddr ?? '').toUpperCase()) return false
  if (x.bridge !== y.bridge || num(x.tag) !== num(y.tag) || num(x.rate) !== num(y.rate)) return false
  if (Boolean(x.firewall) !== Boolean(y.firewall)) return false
  const keys = new Set([...Object.keys(x.extra), ...Object.keys(y.extra)])
  for (const key of keys) {
    const u = x.extra[key]
    const v = y.extra[key]
    if (u === v) continue
    if (u === undefined || v === undefined) return false
    if (!(u.trim() !== '' && Number(u) === Number(v))) return false
  }
  return true
}

export interface NetChange {
  bridge?: string
  /** A VLAN tag, or null to remove it. */
  tag?: number | null
  /** MB/s, or null for no limit. */
  rate?: number | null
  firewall?: boolean
  model?: string
}

/**
 * Applies a change to an existing `netN` string and keeps the MAC: a string without a MAC makes the
 * server invent a new one, which breaks DHCP reservations and anti-spoofing.
 */
export function updateNet(existing: string, change: NetChange): string {
  const device = parseNet(existing)
  if (change.model !== undefined) device.model = change.model
  if (change.bridge !== undefined) device.bridge = change.bridge
  if (change.tag === null) delete device.tag
  else if (change.tag !== undefined) device.tag = change.tag
  if (change.rate === null) delete device.rate
  else if (change.rate !== undefined) device.rate = change.rate
  if (change.firewall !== undefined) device.firewall = change.firewall
  return formatNet(device)
}

// ---- drives -------------------------------------------------------------------------------------

export interface Drive {
  /** `local-lvm:vm-100-disk-0`, `local:iso/x.iso`, `none`, or `STORAGE:SIZE` for a new volume. */
  file: string
  options: Record<string, string>
}

export function parseDrive(text: string): Drive {
  const map = parsePropertyString(text, 'file')
  const file = map.get('file')
  if (file === undefined) throw new Error(`format error: drive without a volume: ${text}`)
  map.delete('file')
  return { file, options: Object.fromEntries(map) }
}

const DRIVE_FORMAT = configOptionFormat('scsi0') ?? {}

/**
 * A drive string in PVE's canonical order (qemu-server `src/PVE/QemuServer/Drive.pm` `print_drive` →
 * `print_property_string`): the volume bare first, then the options sorted.
 */
export function formatDrive(drive: Drive): string {
  return printPropertyString({ ...drive.options, file: drive.file }, DRIVE_FORMAT)
}

/**
 * Whether config parameters allocate a volume: a drive whose volume is `STORAGE:SIZE` (qemu-server
 * `src/PVE/QemuServer/Drive.pm` `$NEW_DISK_RE`) or that imports one (`import-from`). Such a write
 * must never be sent twice: each one allocates, and the earlier volume is left as `unusedN`.
 */
export function allocatesVolume(params: Record<string, unknown>): boolean {
  for (const [key, value] of Object.entries(params)) {
    if (typeof value !== 'string') continue
    const split = splitIndexedKey(key)
    const isDrive =
      (split && ['ide', 'sata', 'scsi', 'virtio'].includes(split.base)) ||
      key === 'efidisk0' ||
      key === 'tpmstate0'
    if (!isDrive) continue
    const file = value.split(',')[0] ?? ''
    if (/^(?:[^/:\s]+:)?\d+(?:\.\d+)?$/.test(file) || /(^|,)import-from=/.test(value)) return true
  }
  return false
}

/** Disk throttling keys a product may set (MB/s floats and ops/s integers). */
export const DISK_LIMIT_KEYS = ['mbps_rd', 'mbps_wr', 'iops_rd', 'iops_wr', 'mbps', 'iops'] as const
export type DiskLimitKey = (typeof DISK_LIMIT_KEYS)[number]
export type DiskLimits = Partial<Record<DiskLimitKey, number>>

/** Sets (or clears with 0) the throttling keys of a drive string, keeping everything else. */
export function withDiskLimits(drive: string, limits: DiskLimits): string {
  const parsed = parseDrive(drive)
  for (const key of DISK_LIMIT_KEYS) {
    const value = limits[key]
    if (value === undefined) continue
    if (value > 0) parsed.options[key] = String(value)
    else delete parsed.options[key]
  }
  return formatDrive(parsed)
}

export function diskLimitsOf(drive: string): DiskLimits {
  const { options } = parseDrive(drive)
  const out: DiskLimits = {}
  for (const key of DISK_LIMIT_KEYS) if (options[key] !== undefined) out[key] = Number(options[key])
  return out
}

// ---- sizes ---------------------------------------------------------------------------------------

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }

/** `32G` → bytes; a bare number is bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(text.trim())
  if (!m) throw new Error(`invalid size '${text}'`)
  return Math.round(Number(m[1]) * (UNITS[m[2] as string] as number))
}

/** Bytes as the largest whole unit the server would write (`32G`, `512M`). */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const size = UNITS[unit] as number
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}

/** Lenient number coercion: PVE sends some integers as strings (`nextid`), booleans as 0/1. */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value)
  return undefined
}

export function toBoolean(value: unknown): boolean {
  return value === true || value === 1 || value === '1' || value === 'true' || value === 'on'
}

// ---- SSH public keys ------------------------------------------------------------------------------

const SSH_KEY_TYPES: Record<string, (blob: SshBlobReader) => void> = {
  'ssh-ed25519': (r) => r.bytes(32),
  'ssh-rsa': (r) => {
    r.mpint()
    r.mpint()
  },
  'ssh-dss': (r) => {
    for (let i = 0; i < 4; i++) r.mpint()
  },
  'ecdsa-sha2-nistp256': (r) => ecdsa(r, 'nistp256'),
  'ecdsa-sha2-nistp384': (r) => ecdsa(r, 'nistp384'),
  'ecdsa-sha2-nistp521': (r) => ecdsa(r, 'nistp521'),
  'sk-ssh-ed25519@openssh.com': (r) => {
    r.bytes(32)
    r.string()
  },
  'sk-ecdsa-sha2-nistp256@openssh.com': (r) => {
    ecdsa(r, 'nistp256')
    r.string()
  },
}

function ecdsa(r: SshBlobReader, curve: string): void {
  if (r.string().toString('latin1') !== curve) throw new Error(`curve is not ${curve}`)
  r.string()
}

class SshBlobReader {
  private offset = 0
  private readonly blob: Buffer
  constructor(blob: Buffer) {
    this.blob = blob
  }
  string(): Buffer {
    if (this.offset + 4 > this.blob.length) throw new Error('truncated key')
    const length = this.blob.readUInt32BE(this.offset)
    if (this.offset + 4 + length > this.blob.length) throw new Error('truncated key')
    const out = this.blob.subarray(this.offset + 4, this.offset + 4 + length)
    this.offset += 4 + length
    return out
  }
  mpint(): void {
    if (this.string().length === 0) throw new Error('empty number')
  }
  bytes(n: number): void {
    if (this.string().length !== n) throw new Error(`expected ${n} key bytes`)
  }
  end(): void {
    if (this.offset !== this.blob.length) throw new Error('trailing data in key')
  }
}

/**
 * Why one line is not an OpenSSH public key, or undefined when it is one. PVE checks each line of
 * `sshkeys` with `ssh-keygen -l -f` (pve-common `src/PVE/Tools.pm` `validate_ssh_public_keys`, called
 * by qemu-server's `update_vm_api`) and answers `SSH public key validation error`; this applies the
 * same test: `[options] type base64 [comment]`, the base64 decoding to a blob that names the same type
 * and holds that type's fields.
 */
export function sshPublicKeyProblem(line: string): string | undefined {
  const fields = line.trim().split(/\s+/)
  const at = fields.findIndex((f) => SSH_KEY_TYPES[f] !== undefined)
  if (at === -1) return 'unknown key type'
  const type = fields[at] as string
  const data = fields[at + 1]
  if (data === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0)
    return 'key data is not base64'
  try {
    const reader = new SshBlobReader(Buffer.from(data, 'base64'))
    if (reader.string().toString('latin1') !== type) return `key data is not a ${type} key`
    ;(SSH_KEY_TYPES[type] as (r: SshBlobReader) => void)(reader)
    reader.end()
  } catch (error) {
    return (error as Error).message
  }
  return undefined
}
