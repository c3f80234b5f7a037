import { createConnector, MemoryCheckpointStore, MemoryLogSink, type Result } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createProxmoxKvmConnector,
  MemoryDnsProvider,
  MemoryIpPool,
  MemoryVmidReservations,
  parseDrive,
  parseNet,
  SUSPENDED_TAG,
  serviceIdFromDescription,
} from '../../src/index.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

let sim: ProxmoxSimulator
const dns = new MemoryDnsProvider()
const ipPool = new MemoryIpPool({
  main: {
    ipv4: { network: '203.0.113.0/24', gateway: '203.0.113.1' },
    ipv6: { network: '2001:db8:10::/64', gateway: '2001:db8:10::1' },
  },
})
const vmids = new MemoryVmidReservations()
const sink = new MemoryLogSink(100_000)
const checkpoints = new MemoryCheckpointStore()
const definition = createProxmoxKvmConnector({
  ipPool,
  dns,
  vmids,
  client: { tasks: { pollMs: 1, maxPollMs: 10 }, lockRetry: { initialDelayMs: 2, maxDelayMs: 20 } },
})
const connector = createConnector(definition, { sink, checkpoints })
let n = 0

function service(settings: Record<string, unknown> = {}) {
  n++
  return {
    serviceId: `7${String(n).padStart(3, '0')}`,
    clientId: 12,
    username: 'ada',
    password: `First-Pw-${n}!`,
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
      ipv6: true,
      dnsZone: 'example.net',
      cores: 2,
      memoryMb: 2048,
      diskGb: 20,
      diskMbpsRd: 100,
      diskIopsWr: 500,
      additionalDiskGb: 8,
      additionalDiskMbps: 50,
      vlan: 20,
      rateMbps: 12.5,
      snapshotLimit: 2,
      backupSlots: 2,
      consoleUrl: 'https://console.example.net/novnc/',
      ...settings,
    },
    client: { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace' },
  }
}

function vmOf(serviceId: string) {
  return [...sim.vms.values()].find((vm) => serviceIdFromDescription(vm.config.description) === serviceId)
}

function ok<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.operation} failed: ${result.error.code} ${result.error.detail}`)
  return result.data
}

beforeAll(async () => {
  sim = await new ProxmoxSimulator({ taskDurations: { default: 1 } }).start()
})
afterAll(async () => {
  await connector.close()
  await sim.close()
})

describe('deploy pipeline', () => {
  it('runs every step and leaves a VM built to the package', async () => {
    const s = service()
    const progress: string[] = []
    const result = await connector.invoke(
      'create',
      { service: s },
      { onProgress: (e) => progress.push(e.step.name) },
    )
    const data = ok(result)
    expect(data.created).toBe(true)
    expect(progress).toEqual([
      'place',
      'ip',
      'dns',
      'clone',
      'migrate',
      'cpu-ram',
      'system-disk-size',
      'system-disk-io',
      'additional-disk',
      'additional-disk-size',
      'additional-disk-io',
      'network',
      'firewall',
      'cloud-init',
      'start',
      'verify',
    ])
    const log = String(data.details?.log)
    expect(log).toMatch(/^--- Deploy: service=7\d+ vm=\d+ status=creation ---/)
    expect(log).toMatch(/\[\+\] {2}4\. Clone from template +success \(set_dns -> clone\) \[\d+\.\d\ds\]/)
    expect(log).toContain('--- Deploy complete:')
    const vm = vmOf(String(s.serviceId))
    expect(vm).toBeDefined()
    if (!vm) return
    expect(vm.status).toBe('running')
    expect(vm.config.cores).toBe('2')
    expect(vm.config.memory).toBe('2048')
    expect(vm.config.name).toBe(`vps-12-${s.serviceId}`)
    expect(parseDrive(vm.config.scsi0 as string).options).toMatchObject({
      size: '20G',
      mbps_rd: '100',
      iops_wr: '500',
    })
    expect(parseDrive(vm.config.scsi1 as string).options).toMatchObject({
      size: '8G',
      mbps_rd: '50',
      mbps_wr: '50',
    })
    const net = parseNet(vm.config.net0 as string)
    expect(net).toMatchObject({ bridge: 'vmbr0', tag: 20, rate: 12.5, firewall: true })
    expect(net.macaddr).toBe(data.details?.mac)
    expect(data.ips).toEqual([
      vm.config.ipconfig0?.match(/ip=([\d.]+)/)?.[1],
      vm.config.ipconfig0?.match(/ip6=([\da-f:]+)/)?.[1],
    ])
    expect(vm.config.ipconfig0).toContain('gw=203.0.113.1')
    expect(vm.config.cipassword).toMatch(/^\$5\$/)
    expect(vm.cloudinit?.ciuser).toBe('ada')
    expect(vm.firewall.options).toMatchObject({ enable: '1', ipfilter: '1' })
    expect(vm.firewall.ipsets.get('ipfilter-net0')?.entries.map((e) => e.cidr)).toEqual(data.ips)
    expect(vm.firewall.rules.every((r) => r.enable === 1)).toBe(true)
    expect(
      dns.records
        .get(`example.net/vps-12-${s.serviceId}.example.net`)
        ?.map((r) => r.type)
        .sort(),
    ).toEqual(['A', 'AAAA', 'PTR', 'PTR'])
    expect(JSON.stringify(sink.entries)).not.toContain(s.password)
  })

  it('passes the customer’s SSH keys to cloud-init, encoded as the server accepts them', async () => {
    const keys = [
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR1UNgXn4nKnXr4Tyj40HXJyJv5OsA0NoZJLCCqnQz ada@laptop',
      'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCm8ZHa7hiKMxsA25NhqH3dAVrrGuUbsIz/ZPZdbc42BRSCxotE4Mg/BjzkuVS2sZNG9xJX/tD5Lw2tSS1sLvUS4Gh4N/Dz0tHaIjYE05NBDqNeG8it4IhaV9hTB0MF0AkeRmGY0QA3hLdoFYFmwSByOtm34Na3LGqPGlEZQ2WAnw== ada+work@example.com',
    ]
    const s = { ...service({ additionalDiskGb: 0 }), customFields: { sshkeys: keys.join('\n') } }
    ok(await connector.invoke('create', { service: s }))
    const stored = vmOf(String(s.serviceId))?.config.sshkeys as string
    expect(stored).toMatch(/^[-%a-zA-Z0-9_.!~*'()]*$/)
    expect(decodeURIComponent(stored).split('\n')).toEqual(keys)
  })

  it('two creates of one service at once: one pipeline, one VM, the second answers created: false', async () => {
    const s = service({ additionalDiskGb: 0 })
    const progress: string[] = []
    const create = () =>
      connector.invoke('create', { service: s }, { onProgress: (e) => progress.push(e.step.name) })
    const [x, y] = (await Promise.all([create(), create()])).map(ok)
    expect([x?.created, y?.created].sort()).toEqual([false, true])
    expect(x?.accountId).toBe(y?.accountId)
    expect(progress.filter((n) => n === 'clone')).toHaveLength(1)
    expect([...sim.vms.values()].filter((vm) => vm.config.name === `vps-12-${s.serviceId}`)).toHaveLength(1)
  })

  it('a failed step pauses the deploy and the next call resumes exactly there', async () => {
    const s = service({ additionalDiskGb: 0 })
    sim.failTask({ type: 'qmstart', exitstatus: 'start failed: QEMU exited with code 1' })
    const first = await connector.invoke('create', { service: s })
    expect(first.ok).toBe(false)
    if (first.ok) return
    expect(first.error.detail).toContain('start failed: QEMU exited with code 1')
    expect(first.runs?.[0]?.state).toBe('set_cloudinit')
    const skipped = first.runs?.[0]?.steps.filter((x) => x.outcome === 'skipped').map((x) => x.reason)
    expect(skipped).toContain('no additional disk in the package')
    const second = ok(await connector.invoke('create', { service: s }))
    expect(second.created).toBe(true)
    expect(String(second.details?.log)).toMatch(/status=set_cloudinit ---/)
    expect(
      String(second.details?.log)
        .split('\n')
        .filter((l) => l.startsWith('[')),
    ).toHaveLength(2)
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
  })

  it('a lost clone answer is not replayed; the resume finds the clone and adopts it', async () => {
    const s = service({ additionalDiskGb: 0 })
    let clones = 0
    sim.dropResponseNext({
      match: (method, path) => method === 'POST' && path.endsWith('/clone') && ++clones > 0,
    })
    const first = await connector.invoke('create', { service: s })
    expect(first.ok).toBe(false)
    if (!first.ok) expect(first.error.code).toBe('CONNECTION')
    expect(clones).toBe(1)
    const second = ok(await connector.invoke('create', { service: s }))
    expect(String(second.details?.log)).toContain('Clone from template')
    expect([...sim.vms.values()].filter((vm) => vm.config.name === `vps-12-${s.serviceId}`)).toHaveLength(1)
  })

  it('"already exists" from a VMID taken outside the store moves on to another id', async () => {
    const s = service({ additionalDiskGb: 0 })
    const next = Number((await fetchNextId()) as string)
    sim.failNext({
      status: 500,
      message: `unable to create VM ${next}: config file already exists`,
      match: (method, path) => method === 'POST' && path.endsWith('/clone'),
    })
    sim.addVm({ vmid: next, node: 'pve3', config: { name: 'someone-else', memory: '512' } })
    const data = ok(await connector.invoke('create', { service: s }))
    expect(Number(data.accountId)).not.toBe(next)
    expect(sim.vms.get(next)?.config.name).toBe('someone-else')
  })

  it('says why no node fits before anything is allocated', async () => {
    const s = service({ memoryMb: 4 * 1024 * 1024 })
    const result = await connector.invoke('create', { service: s })
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.code).toBe('CAPACITY')
    expect(result.error.detail).toMatch(/pve1: \d+ MiB free memory, needs 4194304/)
    expect(await ipPool.leases(String(s.serviceId))).toHaveLength(0)
  })

  it('a failing DNS provider never blocks a deploy', async () => {
    const s = service({ additionalDiskGb: 0 })
    dns.failNext = 1
    const result = await connector.invoke('create', { service: s })
    const data = ok(result)
    expect(String(data.details?.log)).toMatch(/Set DNS records +success/)
    const dnsStep = result.ok ? result.runs?.[0]?.steps.find((x) => x.name === 'dns') : undefined
    expect(dnsStep?.reason).toMatch(/^DNS failed \(non-blocking\): DNS provider unavailable/)
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
  })

  it('parallel creates from two processes sharing the reservation store never share a VMID or an IP', async () => {
    const other = createConnector(definition, { checkpoints: new MemoryCheckpointStore() })
    const services = Array.from({ length: 12 }, () => service({ additionalDiskGb: 0, ipv6: false }))
    const results = await Promise.all(
      services.map((s, i) => (i % 2 ? other : connector).invoke('create', { service: s })),
    )
    const ids = results.map((r) => ok(r).accountId)
    expect(new Set(ids).size).toBe(12)
    const ips = results.map((r) => ok(r).ips?.[0])
    expect(new Set(ips).size).toBe(12)
    await other.close()
  })
})

async function fetchNextId(): Promise<unknown> {
  const { createProxmoxClient } = await import('../../src/client.ts')
  const client = createProxmoxClient({
    baseUrl: sim.url,
    tls: { fingerprint: sim.fingerprint256 },
    credentials: { type: 'password', username: 'root@pam', password: 'sim-root-password' },
  })
  try {
    return String(await client.nextId())
  } finally {
    await client.close()
  }
}

describe('lifecycle after deploy', () => {
  let s: ReturnType<typeof service>
  beforeAll(async () => {
    s = service({ additionalDiskGb: 0 })
    ok(await connector.invoke('create', { service: s }))
  })

  it('changes the package as its own pipeline: stop once, only what changed, start at the end', async () => {
    const changed = { ...s, settings: { ...s.settings, cores: 4, memoryMb: 4096 } }
    const data = ok(await connector.invoke('changePackage', { service: changed }))
    expect(data.changed).toBe(true)
    expect(data.applied).toEqual(['cpu-ram'])
    const log = String(data.details?.log)
    expect(log).toMatch(/Stop VM +success \(change_package -> cp_stop\)/)
    expect(log).toContain('Configure network (skip — no change)')
    expect(log).toMatch(/Start VM +success \(cp_firewall -> ready\)/)
    const vm = vmOf(String(s.serviceId))
    expect(vm?.config.cores).toBe('4')
    expect(vm?.status).toBe('running')
    const again = ok(await connector.invoke('changePackage', { service: changed }))
    expect(again).toMatchObject({ changed: false, applied: [] })
  })

  it('a network change (VLAN, rate) keeps the MAC', async () => {
    const before = parseNet(vmOf(String(s.serviceId))?.config.net0 as string)
    const moved = { ...s, settings: { ...s.settings, vlan: 30, rateMbps: 25 } }
    const data = ok(await connector.invoke('changePackage', { service: moved }))
    expect(data.applied).toContain('network')
    const after = parseNet(vmOf(String(s.serviceId))?.config.net0 as string)
    expect(after.macaddr).toBe(before.macaddr)
    expect(after.tag).toBe(30)
    expect(Number(after.rate)).toBe(25)
    expect(before.tag).toBe(20)
    ok(await connector.invoke('changePackage', { service: s }))
    expect(parseNet(vmOf(String(s.serviceId))?.config.net0 as string)).toMatchObject({
      macaddr: before.macaddr,
      tag: 20,
    })
  })

  it('each change-package job is its own run, even with job run keys', async () => {
    const three = { ...s, settings: { ...s.settings, cores: 3 } }
    expect(
      ok(await connector.invoke('changePackage', { service: three }, { runKey: 'job-1' })).applied,
    ).toEqual(['cpu-ram'])
    const two = { ...s, settings: { ...s.settings, cores: 2 } }
    expect(
      ok(await connector.invoke('changePackage', { service: two }, { runKey: 'job-2' })).applied,
    ).toEqual(['cpu-ram'])
    expect(vmOf(String(s.serviceId))?.config.cores).toBe('2')
  })

  it('suspends, unsuspends and resets the password through cloud-init', async () => {
    ok(await connector.invoke('suspend', { service: s }))
    let vm = vmOf(String(s.serviceId))
    expect(vm?.status).toBe('stopped')
    expect(vm?.config.tags?.split(';')).toContain(SUSPENDED_TAG)
    ok(await connector.invoke('unsuspend', { service: s }))
    vm = vmOf(String(s.serviceId))
    expect(vm?.status).toBe('running')
    const before = vm?.config.cipassword
    const updated = { ...s, password: 'Second-Password-9' }
    ok(await connector.invoke('changePassword', { service: updated }))
    vm = vmOf(String(s.serviceId))
    expect(vm?.config.cipassword).not.toBe(before)
    expect(vm?.cloudinit?.cipassword).toBe(vm?.config.cipassword)
    expect(vm?.status).toBe('running')
    expect(JSON.stringify(sink.entries)).not.toContain('Second-Password-9')
  })

  it('snapshots: past the limit the oldest goes, expired ones go first, roll back, clean up', async () => {
    const act = (action: string, params: Record<string, unknown> = {}) =>
      connector.invoke('action', { service: s, action, params, audience: 'client' })
    const names = () => (vmOf(String(s.serviceId))?.snapshots ?? []).map((x) => x.name)
    const a = ok(await act('createSnapshot', { description: 'before upgrade' })).data as { name: string }
    await new Promise((r) => setTimeout(r, 5))
    const b = ok(await act('createSnapshot')).data as { name: string }
    await new Promise((r) => setTimeout(r, 5))
    // The limit is 2: a third snapshot deletes the oldest instead of refusing.
    const c = ok(await act('createSnapshot')).data as { name: string; deleted: string[] }
    expect(c.deleted).toEqual([a.name])
    expect(names()).toEqual([b.name, c.name])
    const list = ok(await act('listSnapshots')).data as { snapshots: { name: string }[] }
    expect(list.snapshots.map((x) => x.name)).toEqual([b.name, c.name])
    // Expired snapshots are deleted before a new one is taken, even under the limit.
    const vm = vmOf(String(s.serviceId))
    const first = vm?.snapshots.find((x) => x.name === b.name)
    if (first) first.snaptime -= 30 * 86400
    await new Promise((r) => setTimeout(r, 5))
    const d = ok(await act('createSnapshot')).data as { name: string; deleted: string[] }
    expect(d.deleted).toEqual([b.name])
    expect(names()).toEqual([c.name, d.name])
    ok(await act('rollbackSnapshot', { name: d.name }))
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
    for (const snap of vmOf(String(s.serviceId))?.snapshots ?? []) snap.snaptime -= 30 * 86400
    const cleaned = ok(
      await connector.invoke('action', { service: s, action: 'cleanupSnapshots', audience: 'admin' }),
    )
    expect((cleaned.data as { deleted: string[] }).deleted).toEqual([c.name, d.name])
    expect(vmOf(String(s.serviceId))?.snapshots).toHaveLength(0)
  })

  it('snapshots: a plan without snapshots refuses with CAPACITY', async () => {
    const none = { ...s, settings: { ...s.settings, snapshotLimit: 0 } }
    const r = await connector.invoke('action', {
      service: none,
      action: 'createSnapshot',
      audience: 'client',
    })
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error.code).toBe('CAPACITY')
  })

  it('backups: slots keep the newest, restore re-applies the package', async () => {
    const act = (action: string, params: Record<string, unknown> = {}) =>
      connector.invoke('action', { service: s, action, params })
    for (let i = 0; i < 3; i++) {
      ok(await act('createBackup'))
      // Backup names and times have a one-second resolution: let the simulator's clock move on.
      sim.clockOffsetMs += 2000
    }
    const { backups } = ok(await act('listBackups')).data as { backups: { volid: string; ctime: number }[] }
    expect(backups).toHaveLength(2)
    const vm = vmOf(String(s.serviceId))
    if (vm) vm.config.cores = '1'
    // The package grew since the backup: the restore must bring the disk up to it.
    const grown = { ...s, settings: { ...s.settings, diskGb: 25 } }
    const restored = ok(
      await connector.invoke('action', {
        service: grown,
        action: 'restoreBackup',
        params: { volid: backups[0]?.volid },
      }),
    )
    expect(restored.message).toBe('Backup restored')
    expect((restored.data as { applied: string[] }).applied).toContain('system-disk-size')
    expect(vmOf(String(s.serviceId))?.config.cores).toBe('2')
    expect(parseDrive(vmOf(String(s.serviceId))?.config.scsi0 as string).options.size).toBe('25G')
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
  })

  it('scheduled backups: due on the chosen days from the chosen time, once a day, within the slots', async () => {
    const act = (params: Record<string, unknown>) =>
      connector.invoke('action', { service: s, action: 'scheduledBackup', params, audience: 'admin' })
    const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']
    const today = days[(new Date().getUTCDay() + 6) % 7] as string
    const vmid = vmOf(String(s.serviceId))?.vmid
    const backups = () =>
      sim.storages
        .flatMap((st) => [...st.volumes.values()])
        .filter((v) => v.content === 'backup' && v.vmid === vmid)
    // Earlier backups now date from two days ago, so today's is missing.
    for (const b of backups()) b.ctime -= 2 * 86400
    const before = backups().length
    expect(ok(await act({ days: days.filter((d) => d !== today) })).data).toEqual({ created: false })
    const hour = new Date().getUTCHours()
    if (hour < 23) {
      const later = `${String(hour + 1).padStart(2, '0')}:00`
      expect(ok(await act({ days: [today], after: later })).message).toBe('No backup due now')
    }
    const made = ok(await act({ days: [today] })).data as { created: boolean; deleted: string[] }
    expect(made.created).toBe(true)
    expect(made.deleted).toHaveLength(Math.max(0, before + 1 - 2))
    expect(backups()).toHaveLength(Math.min(2, before + 1))
    expect(ok(await act({ days: [today] })).message).toBe("Today's backup exists")
    const bad = await act({ days: ['someday'] })
    expect(bad.ok).toBe(false)
    if (!bad.ok) expect(bad.error.code).toBe('VALIDATION')
  })

  it('ISOs are grouped by name prefix and can be mounted and ejected', async () => {
    const groups = (
      ok(await connector.invoke('action', { service: s, action: 'listIsos' })).data as {
        groups: Record<string, { volid: string }[]>
      }
    ).groups
    expect(Object.keys(groups).sort()).toEqual(['Debian', 'OTHER', 'Ubuntu', 'proxmox'])
    const volid = groups.Debian?.[0]?.volid as string
    // The template has no CD-ROM drive (ide2 is cloud-init): a new ide3 on a running VM stays
    // pending until a restart, as on a real node, and the action says so.
    const vm = vmOf(String(s.serviceId))
    expect(vm?.status).toBe('running')
    const first = ok(await connector.invoke('action', { service: s, action: 'mountIso', params: { volid } }))
    expect(first.message).toContain('only after a restart')
    expect(first.data).toMatchObject({ slot: 'ide3', restartRequired: true })
    expect(vm?.config.ide3).toBeUndefined()
    expect(vm?.pending.ide3).toBe(`${volid},media=cdrom`)
    ok(await connector.invoke('action', { service: s, action: 'reboot' }))
    expect(vmOf(String(s.serviceId))?.config.ide3).toBe(`${volid},media=cdrom`)
    // Now the drive exists: changing its media takes effect at once.
    const other = groups.Ubuntu?.[0]?.volid as string
    const second = ok(
      await connector.invoke('action', { service: s, action: 'mountIso', params: { volid: other } }),
    )
    expect(second).toMatchObject({ message: `Mounted ${other}`, data: { restartRequired: false } })
    expect(vmOf(String(s.serviceId))?.config.ide3).toBe(`${other},media=cdrom`)
    const ejected = ok(await connector.invoke('action', { service: s, action: 'unmountIso' }))
    expect(ejected.message).toBe(`Ejected ${other}`)
    expect(vmOf(String(s.serviceId))?.config.ide3).toBe('none,media=cdrom')
  })

  it('console: a vncproxy ticket turned into a noVNC URL', async () => {
    const data = ok(await connector.invoke('action', { service: s, action: 'console', audience: 'client' }))
      .data as { url: string }
    const url = new URL(data.url)
    expect(url.origin).toBe('https://console.example.net')
    expect(url.searchParams.get('session')).toMatch(/:PVEVNC:/)
    expect(Number(url.searchParams.get('vncport'))).toBeGreaterThanOrEqual(5900)
    expect(url.searchParams.get('user')).toBe('root@pam')
    expect(url.searchParams.get('host')).toBe('127.0.0.1')
    expect(url.searchParams.get('node')).toBe(vmOf(String(s.serviceId))?.node)
  })

  it('usage integrates rrddata; clientArea and listAccounts show the VM', async () => {
    const vm = vmOf(String(s.serviceId))
    if (vm) vm.usage = { cpu: 0.25, netinRate: 1000, netoutRate: 2000, since: 0 }
    const usage = ok(await connector.invoke('usage', { service: s }))
    const metric = (name: string) => usage.metrics.find((m) => m.name === name)?.value
    expect(metric('network_in')).toBe(1000 * 1800 * 1440)
    expect(metric('network_out')).toBe(2000 * 1800 * 1440)
    expect(metric('cpu')).toBe(25)
    const area = ok(await connector.invoke('clientArea', { service: s }))
    expect(area.fields.find((f) => f.key === 'ipv4')?.value).toMatch(/^203\.0\.113\./)
    const list = ok(await connector.invoke('listAccounts', { server: s.server }))
    expect(list.accounts.find((a) => a.serviceId === s.serviceId)).toMatchObject({
      status: 'active',
      accountId: String(vm?.vmid),
    })
  })

  it('reinstall keeps VMID, IP and MAC, deletes snapshots and keeps backups', async () => {
    const vm = vmOf(String(s.serviceId))
    const vmid = vm?.vmid
    const mac = parseNet(vm?.config.net0 as string).macaddr
    const ip = vm?.config.ipconfig0
    ok(await connector.invoke('action', { service: s, action: 'createSnapshot' }))
    const backupsBefore = (
      ok(await connector.invoke('action', { service: s, action: 'listBackups' })).data as {
        backups: unknown[]
      }
    ).backups.length
    const result = ok(await connector.invoke('action', { service: s, action: 'reinstall' }))
    expect(String((result.data as { log: string }).log)).toContain('Reinstall complete')
    const after = vmOf(String(s.serviceId))
    expect(after?.vmid).toBe(vmid)
    expect(parseNet(after?.config.net0 as string).macaddr).toBe(mac)
    expect(parseNet(vm?.config.net0 as string).tag).toBe(20)
    expect(parseNet(after?.config.net0 as string).tag).toBe(20)
    expect(after?.config.ipconfig0).toBe(ip)
    expect(after?.snapshots).toHaveLength(0)
    expect(after?.status).toBe('running')
    const backupsAfter = (
      ok(await connector.invoke('action', { service: s, action: 'listBackups' })).data as {
        backups: unknown[]
      }
    ).backups.length
    expect(backupsAfter).toBe(backupsBefore)
  })

  it('terminate destroys the VM with its disks, removes DNS and returns the IPs to the pool', async () => {
    const vm = vmOf(String(s.serviceId))
    const ips = await ipPool.leases(String(s.serviceId))
    expect(ips.length).toBe(2)
    const data = ok(await connector.invoke('terminate', { service: s }))
    expect(data.changed).toBe(true)
    expect(vmOf(String(s.serviceId))).toBeUndefined()
    const volumes = sim.storages
      .flatMap((st) => [...st.volumes.values()])
      .filter((v) => v.content === 'images' && v.vmid === vm?.vmid)
    expect(volumes).toHaveLength(0)
    expect(dns.records.has(`example.net/vps-12-${s.serviceId}.example.net`)).toBe(false)
    expect(await ipPool.leases(String(s.serviceId))).toHaveLength(0)
    expect(ipPool.allocated()).not.toContain(ips[0]?.address)
  })
})

describe('product settings', () => {
  it('dropdowns list the cluster: nodes, templates, and storages of the node chosen so far', async () => {
    const server = service().server
    const choices = async (key: string, settings: Record<string, unknown> = {}) => {
      const r = await connector.loadOptions(key, server, { settings })
      if (!r.ok) throw new Error(`${key}: ${r.error.detail}`)
      return r.data
    }
    const nodes = await choices('node')
    expect(nodes.map((c) => c.value)).toEqual(['auto', 'pve1', 'pve2', 'pve3'])
    const templates = await choices('template')
    expect(templates.map((c) => c.value)).toContain('9000')
    expect(templates.find((c) => c.value === '9000')?.label).toMatch(/\(9000 on pve\d\)/)
    const everywhere = await choices('storage')
    const onPve1 = await choices('storage', { node: 'pve1' })
    expect(onPve1.length).toBeGreaterThan(0)
    expect(onPve1.every((c) => everywhere.some((e) => e.value === c.value))).toBe(true)
    for (const c of onPve1) {
      const row = sim.storages.find((st) => st.id === c.value)
      expect(row?.content).toContain('images')
    }
    const backups = await choices('backupStorage', { node: 'pve1' })
    expect(backups.map((c) => c.value)).toContain('local')
    expect((await choices('isoStorage'))[0]).toEqual({ value: '', label: 'Every storage with ISO images' })
  })
})
