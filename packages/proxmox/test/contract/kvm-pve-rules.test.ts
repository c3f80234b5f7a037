import { createConnector, MemoryCheckpointStore, MemoryLogSink, type Result } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createProxmoxClient,
  createProxmoxKvmConnector,
  ENDPOINTS,
  MemoryIpPool,
  MemoryVmidReservations,
  parseDrive,
  parseNet,
  serviceIdFromDescription,
} from '../../src/index.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

// Each test here reproduces a behaviour of a real Proxmox VE node (the simulator models it from
// qemu-server / pve-common / pve-storage, see the comments there) that once broke the connector.

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR1UNgXn4nKnXr4Tyj40HXJyJv5OsA0NoZJLCCqnQz ada@laptop'

let sim: ProxmoxSimulator
const ipPool = new MemoryIpPool({ main: { ipv4: { network: '198.51.100.0/24', gateway: '198.51.100.1' } } })
const vmids = new MemoryVmidReservations()
const sink = new MemoryLogSink(100_000)
const connector = createConnector(
  createProxmoxKvmConnector({
    ipPool,
    vmids,
    client: { tasks: { pollMs: 1, maxPollMs: 10 }, lockRetry: { initialDelayMs: 2, maxDelayMs: 20 } },
  }),
  { sink, checkpoints: new MemoryCheckpointStore() },
)
let n = 0

function service(settings: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  n++
  return {
    serviceId: `8${String(n).padStart(3, '0')}`,
    clientId: 21,
    username: 'ada',
    password: `Pw-${n}-secret!`,
    server: {
      hostname: '127.0.0.1',
      port: sim.port,
      username: 'root@pam',
      password: 'sim-root-password',
      options: { fingerprint: sim.fingerprint256 },
    },
    settings: {
      template: 'debian-12-cloud',
      ipPool: 'main',
      cores: 1,
      memoryMb: 1024,
      diskGb: 10,
      vlan: 20,
      rateMbps: 12.5,
      ...settings,
    },
    client: { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace' },
    ...extra,
  }
}

function vmOf(serviceId: string) {
  return [...sim.vms.values()].find((vm) => serviceIdFromDescription(vm.config.description) === serviceId)
}

function ok<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.operation} failed: ${result.error.code} ${result.error.detail}`)
  return result.data
}

function apiClient() {
  return createProxmoxClient({
    baseUrl: sim.url,
    credentials: { type: 'password', username: 'root@pam', password: 'sim-root-password' },
    tls: { fingerprint: sim.fingerprint256 },
    tasks: { pollMs: 1, maxPollMs: 10 },
  })
}

/** Volumes of a VM on every storage, whatever references them. */
function volumesOf(vmid: number): string[] {
  return sim.storages
    .flatMap((s) => [...s.volumes.values()])
    .filter((v) => v.content === 'images' && v.vmid === vmid)
    .map((v) => v.volid)
    .sort()
}

/** Volumes the VM's config references (disks and unusedN). */
function referenced(vmid: number): string[] {
  const vm = sim.vms.get(vmid)
  if (!vm) return []
  return Object.entries(vm.config)
    .filter(([k, v]) => /^(scsi|virtio|sata|ide|unused)\d+$/.test(k) && !v.includes('media=cdrom'))
    .map(([, v]) => parseDrive(v).file)
    .sort()
}

beforeAll(async () => {
  sim = await new ProxmoxSimulator({ taskDurations: { default: 1 } }).start()
  // A ZFS pool on every node: linked clones there carry their base in the volume name, which
  // pve-storage's ZFSPoolPlugin parse_volname reports, so QemuMigrate refuses to move them.
  for (const node of ['pve1', 'pve2', 'pve3'])
    sim.storages.push({
      id: 'local-zfs',
      type: 'zfspool',
      shared: false,
      content: ['images', 'rootdir'],
      totalBytes: 2 * 1024 ** 4,
      node,
      volumes: new Map(),
    })
  sim.addTemplate({ vmid: 9100, name: 'debian-12-zfs', node: 'pve1', storage: 'local-zfs' })
})
afterAll(async () => {
  await connector.close()
  await sim.close()
})

describe('PVE rewrites property strings its own way', () => {
  it('a change-package with nothing to change does not restart a VM whose net0 PVE printed', async () => {
    const s = service()
    ok(await connector.invoke('create', { service: s }))
    const vm = vmOf(s.serviceId)
    if (!vm) throw new Error('no VM')
    const mac = parseNet(vm.config.net0 as string).macaddr?.toLowerCase() as string
    // The NIC as an admin tuned it in the GUI: lower-case MAC, mtu and queues. PVE stores it as
    // model=MAC first, then the keys sorted (mtu and queues before rate and tag).
    await apiClient().run(ENDPOINTS.vmConfigUpdate, {
      node: vm.node,
      vmid: vm.vmid,
      net0: `virtio=${mac},bridge=vmbr0,tag=20,rate=12.5,firewall=1,queues=4,mtu=1450`,
    })
    expect(vm.config.net0).toBe(`virtio=${mac},bridge=vmbr0,firewall=1,mtu=1450,queues=4,rate=12.5,tag=20`)
    const started = vm.startedAt
    const tasksBefore = [...sim.tasks.values()].filter((t) => t.id === String(vm.vmid)).length
    const data = ok(await connector.invoke('changePackage', { service: s }))
    expect(data).toMatchObject({ changed: false, applied: [] })
    expect(vm.status).toBe('running')
    expect(vm.startedAt).toBe(started)
    const tasks = [...sim.tasks.values()].filter((t) => t.id === String(vm.vmid))
    expect(tasks.slice(tasksBefore).map((t) => t.type)).not.toContain('qmshutdown')
    expect(vm.config.net0).toContain('mtu=1450,queues=4')
  })

  it('NIC models the schema lists (e1000-82545em) deploy, and unknown sub-keys are kept', async () => {
    const t = sim.addTemplate({ vmid: 9200, name: 'legacy-e1000', node: 'pve1' })
    t.config.net0 = 'e1000-82545em=BC:24:11:AA:BB:CC,bridge=vmbr0,link_down=0'
    const s = service({ template: 'legacy-e1000' })
    ok(await connector.invoke('create', { service: s }))
    const net = parseNet(vmOf(s.serviceId)?.config.net0 as string)
    expect(net.model).toBe('e1000-82545em')
    expect(net.extra).toEqual({ link_down: '0' })
    expect(net.tag).toBe(20)
  })
})

describe('linked clones stay on the template’s node', () => {
  for (const variant of [
    { storage: 'local-zfs', template: 'debian-12-zfs', type: 'zfspool (base in the volume name)' },
    { storage: 'local-lvm', template: 'debian-12-cloud', type: 'lvmthin (thin snapshot)' },
  ]) {
    it(`${variant.type}: a VM placed on another node is cloned in full, then migrated`, async () => {
      const s = service({
        linkedClone: true,
        node: 'pve2',
        storage: variant.storage,
        template: variant.template,
      })
      const data = ok(await connector.invoke('create', { service: s }))
      expect(String(data.details?.log)).toMatch(/Migrate to target node +success/)
      const vm = vmOf(s.serviceId)
      expect(vm?.node).toBe('pve2')
      expect(parseDrive(vm?.config.scsi0 as string).file).toMatch(
        new RegExp(`^${variant.storage}:vm-\\d+-disk-\\d+$`),
      )
    })
  }

  it('placement puts a linked clone on the template’s node when it fits, and it stays linked', async () => {
    const s = service({ linkedClone: true, storage: 'local-zfs', template: 'debian-12-zfs' })
    ok(await connector.invoke('create', { service: s }))
    const vm = vmOf(s.serviceId)
    expect(vm?.node).toBe('pve1')
    expect(parseDrive(vm?.config.scsi0 as string).file).toMatch(/^local-zfs:base-9100-disk-0\/vm-\d+-disk-0$/)
  })

  it('the simulator refuses to migrate a linked clone on local storage, as QemuMigrate does', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, { node: 'pve1', vmid: 9100, newid: 4100, full: false })
    await expect(
      c.run(ENDPOINTS.vmMigrate, { node: 'pve1', vmid: 4100, target: 'pve2' }),
    ).rejects.toMatchObject({ exitstatus: expect.stringContaining("as it's a clone of 'base-9100-disk-0'") })
    expect(sim.vms.get(4100)?.node).toBe('pve1')
  })

  it('shared volumes stay on their storage when migrating, targetstorage or not', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, { node: 'pve1', vmid: 9000, newid: 4101, full: true, storage: 'ceph' })
    const before = sim.vms.get(4101)?.config.scsi0
    await c.run(ENDPOINTS.vmMigrate, {
      node: 'pve1',
      vmid: 4101,
      target: 'pve3',
      'with-local-disks': true,
      targetstorage: 'local-lvm',
    })
    expect(sim.vms.get(4101)?.node).toBe('pve3')
    expect(sim.vms.get(4101)?.config.scsi0).toBe(before)
  })

  it('a clone copies the template’s firewall config', async () => {
    const template = sim.vms.get(9001)
    if (!template) throw new Error('no template')
    template.firewall.options = { enable: '1', policy_in: 'DROP' }
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9001,
      newid: 4102,
      full: true,
      storage: 'local-lvm',
    })
    expect(sim.vms.get(4102)?.firewall.options).toEqual({ enable: '1', policy_in: 'DROP' })
    template.firewall.options = {}
  })
})

describe('volumes are allocated once', () => {
  it('a config POST that adds a disk allocates exactly one volume', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 4200,
      full: true,
      storage: 'local-lvm',
    })
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4200, scsi1: 'local-lvm:4' })
    expect(volumesOf(4200)).toEqual(referenced(4200))
    expect(volumesOf(4200)).toHaveLength(2)
    // Adding scsi1 again replaces it: the first volume is kept as unused0, as PVE does.
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4200, scsi1: 'local-lvm:4' })
    expect(sim.vms.get(4200)?.config.unused0).toBe('local-lvm:vm-4200-disk-1')
    // Deleting unusedN frees the volume.
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4200, delete: 'unused0' })
    expect(volumesOf(4200)).toEqual(referenced(4200))
    expect(volumesOf(4200)).toHaveLength(2)
  })

  it('after a lost answer to the additional-disk write, the disk is adopted, never allocated twice', async () => {
    const s = service({ additionalDiskGb: 4 })
    sim.dropResponseNext({
      match: (method, _path, params) => method === 'POST' && params.scsi1 !== undefined,
    })
    ok(await connector.invoke('create', { service: s }))
    const vm = vmOf(s.serviceId)
    if (!vm) throw new Error('no VM')
    expect(vm.config.scsi1).toBeDefined()
    expect(Object.keys(vm.config).filter((k) => k.startsWith('unused'))).toEqual([])
    expect(volumesOf(vm.vmid)).toEqual(referenced(vm.vmid))
    expect(volumesOf(vm.vmid)).toHaveLength(2)
  })

  it('the client does not resend a config write that allocates, but does resend one that does not', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 4201,
      full: true,
      storage: 'local-lvm',
    })
    sim.dropResponseNext({ match: (method, path) => method === 'POST' && path.endsWith('/4201/config') })
    await expect(
      c.call(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4201, scsi1: 'local-lvm:2' }),
    ).rejects.toMatchObject({ code: 'PANELKIT_ERR_CONNECTION' })
    sim.dropResponseNext({ match: (method, path) => method === 'POST' && path.endsWith('/4201/config') })
    await expect(
      c.call(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4201, cores: 2 }),
    ).resolves.toBeTypeOf('string')
    sim.finishAllTasks()
    expect(volumesOf(4201)).toHaveLength(2)
  })
})

describe('restore and names', () => {
  it('a restore keeps each disk on the storage the package wants', async () => {
    const s = service({ additionalDiskGb: 4, additionalDiskStorage: 'ceph', storage: 'local-lvm' })
    ok(await connector.invoke('create', { service: s }))
    const act = (action: string, params: Record<string, unknown> = {}) =>
      connector.invoke('action', { service: s, action, params })
    ok(await act('createBackup'))
    const { backups } = ok(await act('listBackups')).data as { backups: { volid: string }[] }
    ok(await act('restoreBackup', { volid: backups[0]?.volid }))
    const vm = vmOf(s.serviceId)
    expect(parseDrive(vm?.config.scsi0 as string).file).toMatch(/^local-lvm:/)
    expect(parseDrive(vm?.config.scsi1 as string).file).toMatch(/^ceph:/)
    expect(vm?.status).toBe('running')
    if (vm) expect(volumesOf(vm.vmid)).toEqual(referenced(vm.vmid))
  })

  it('a host name cut at 63 characters never ends in "-" (PVE refuses it as a DNS name)', async () => {
    const s = service({}, {})
    s.serviceId = `${'x'.repeat(55)}-tail`
    const data = ok(await connector.invoke('create', { service: s }))
    const name = vmOf(s.serviceId)?.config.name as string
    expect(name).toBe(`vps-21-${'x'.repeat(55)}`)
    expect(data.created).toBe(true)
  })
})

describe('SSH keys are checked like PVE checks them', () => {
  it('a bad key is named before anything is deployed', async () => {
    const s = service({}, { customFields: { sshkeys: `${ED25519}\nssh-rsa AAAAB3NzaC1yc2E= bob@work` } })
    const result = await connector.invoke('create', { service: s })
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.error.code).toBe('VALIDATION')
      expect(result.error.detail).toContain('line 2 (ssh-rsa … bob@work)')
    }
    expect(vmOf(s.serviceId)).toBeUndefined()
    expect(await ipPool.leases(s.serviceId)).toEqual([])
  })

  it('the simulator answers a bad key the way a node does', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 4300,
      full: true,
      storage: 'local-lvm',
    })
    await expect(
      c.call(ENDPOINTS.vmConfigUpdate, {
        node: 'pve1',
        vmid: 4300,
        sshkeys: encodeURIComponent('ssh-ed25519 AAAA'),
      }),
    ).rejects.toMatchObject({ status: 500, reason: 'SSH public key validation error' })
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4300, sshkeys: encodeURIComponent(ED25519) })
    expect(decodeURIComponent(sim.vms.get(4300)?.config.sshkeys as string)).toBe(ED25519)
  })
})

describe('read types as PVE (or a proxy) sends them', () => {
  for (const style of ['number', 'string', 'boolean'] as const) {
    it(`dropdowns find templates and shared storages when the flags are ${style}s`, async () => {
      sim.behaviour.resourceFlags = style
      try {
        const server = service().server
        const templates = await connector.loadOptions('template', server, { settings: {} })
        if (!templates.ok) throw new Error(templates.error.detail)
        expect(templates.data.map((c) => c.value)).toContain('9000')
        const storages = await connector.loadOptions('storage', server, { settings: {} })
        if (!storages.ok) throw new Error(storages.error.detail)
        expect(storages.data.find((c) => c.value === 'ceph')?.label).toContain('shared')
      } finally {
        sim.behaviour.resourceFlags = 'number'
      }
    })
  }

  it('GET config: integers and booleans as numbers, memory and agent as strings; node memory is host usage', async () => {
    const c = apiClient()
    const config = await c.api.vmConfig({ node: 'pve1', vmid: 9000 })
    expect(config.cores).toBe(1)
    expect(config.template).toBe(1)
    expect(config.memory).toBe('2048')
    expect(config.agent).toBe('1')
    // A stopped VM holds no host memory: the node's used memory does not move when one is added.
    const before = (await c.api.nodeStatus({ node: 'pve3' })).memory?.used
    sim.addVm({ vmid: 4401, node: 'pve3', config: { name: 'idle', memory: '65536' } })
    expect((await c.api.nodeStatus({ node: 'pve3' })).memory?.used).toBe(before)
  })
})

describe('pending changes on a running VM', () => {
  it('memory waits for a restart, the name applies at once; GET /pending and current=1 show which is which', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 4500,
      full: true,
      storage: 'local-lvm',
    })
    await c.run(ENDPOINTS.vmStart, { node: 'pve1', vmid: 4500 })
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4500, memory: '4096', name: 'renamed' })
    const vm = sim.vms.get(4500)
    expect(vm?.config.name).toBe('renamed')
    expect(vm?.config.memory).toBe('2048')
    expect((await c.api.vmConfig({ node: 'pve1', vmid: 4500 })).memory).toBe('4096')
    expect((await c.api.vmConfig({ node: 'pve1', vmid: 4500, current: true })).memory).toBe('2048')
    const rows = await c.api.vmPending({ node: 'pve1', vmid: 4500 })
    expect(rows.find((r) => r.key === 'memory')).toMatchObject({ value: '2048', pending: '4096' })
    expect(rows.find((r) => r.key === 'name')).toEqual({ key: 'name', value: 'renamed' })
    await c.run(ENDPOINTS.vmReboot, { node: 'pve1', vmid: 4500 })
    expect(vm?.config.memory).toBe('4096')
    expect(vm?.pending).toEqual({})
  })

  it('a replaced disk on a running VM keeps its volume as unusedN, and nothing leaks', async () => {
    const c = apiClient()
    await c.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: 4501,
      full: true,
      storage: 'local-lvm',
    })
    await c.run(ENDPOINTS.vmStart, { node: 'pve1', vmid: 4501 })
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4501, scsi1: 'local-lvm:2' })
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4501, scsi1: 'local-lvm:3' })
    expect(sim.vms.get(4501)?.config.unused0).toBe('local-lvm:vm-4501-disk-1')
    expect(volumesOf(4501)).toEqual(referenced(4501))
    // A new IDE drive on a running VM waits (vmconfig_hotplug_pending skips ide/sata).
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4501, ide3: 'local-lvm:1' })
    expect(sim.vms.get(4501)?.pending.ide3).toMatch(/^local-lvm:vm-4501-disk-\d+,size=1G$/)
    expect(volumesOf(4501)).toHaveLength(referenced(4501).length + 1)
    // Dropping that pending drive keeps its volume as unusedN: nothing is lost or leaked.
    await c.run(ENDPOINTS.vmConfigUpdate, { node: 'pve1', vmid: 4501, delete: 'ide3' })
    expect(sim.vms.get(4501)?.pending.ide3).toBeUndefined()
    expect(sim.vms.get(4501)?.pendingDelete.has('ide3')).toBe(false)
    expect(volumesOf(4501)).toEqual(referenced(4501))
  })
})

describe('vncproxy port as a string or an integer', () => {
  for (const asString of [true, false]) {
    it(`the console URL carries the port when PVE sends it as ${asString ? 'a string' : 'an integer'}`, async () => {
      sim.behaviour.vncPortAsString = asString
      try {
        const s = service({ consoleUrl: 'https://console.example.net/novnc/' })
        ok(await connector.invoke('create', { service: s }))
        const data = ok(
          await connector.invoke('action', { service: s, action: 'console', audience: 'client' }),
        ).data as { url: string }
        expect(new URL(data.url).searchParams.get('vncport')).toMatch(/^59\d\d$/)
      } finally {
        sim.behaviour.vncPortAsString = true
      }
    })
  }
})
