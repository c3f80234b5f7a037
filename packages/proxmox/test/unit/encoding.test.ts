import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { groupIsos, isoGroup } from '../../src/connector/iso.ts'
import { bigIntToIpv6, ipv6ToBigInt, MemoryIpPool } from '../../src/connector/stores.ts'
import {
  allocatesVolume,
  configOptionFormat,
  decodeForm,
  decodeSshKeys,
  encodeForm,
  encodeSshKeys,
  formatDrive,
  formatNet,
  formatPropertyString,
  formatSize,
  indexed,
  indexedKey,
  listIndexed,
  NET_MODELS,
  parseDrive,
  parseNet,
  parsePropertyString,
  parsePropertyStringWith,
  parseSize,
  printPropertyString,
  sameNet,
  splitIndexedKey,
  sshPublicKeyProblem,
  toNumber,
  URLENCODED_PATTERN,
  updateNet,
  withDiskLimits,
} from '../../src/encoding.ts'
import { dryRunUpid, exitStatusIsOk, formatUpid, isDryRunUpid, parseUpid } from '../../src/tasks.ts'

describe('form encoding', () => {
  it('sends booleans as 1 and 0, skips undefined, repeats arrays', () => {
    expect(encodeForm({ full: true, onboot: false, skip: undefined, n: 3, vms: ['101', '102'] })).toBe(
      'full=1&onboot=0&n=3&vms=101&vms=102',
    )
  })

  it('round-trips through the server-side decoder', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ minLength: 1 }).filter((k) => !k.includes('\0')),
          fc.string(),
        ),
        (params) => {
          const decoded = decodeForm(encodeForm(params))
          for (const [k, v] of Object.entries(params))
            expect(Object.hasOwn(decoded, k) ? decoded[k] : undefined).toBe(v)
        },
      ),
    )
  })
})

describe('sshkeys', () => {
  const keys = [
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH2m+/x= ada@example.com',
    'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ/C+== bob@host:22',
  ]

  it('encodes exactly like encodeURIComponent of the newline-joined keys, which the server pattern accepts', () => {
    const value = encodeSshKeys(keys)
    expect(value).toBe(encodeURIComponent(keys.join('\n')))
    expect(value).toContain('%0A')
    expect(value).toContain('%2F')
    expect(value).toContain('%3A')
    expect(value).toContain('%20')
    expect(value).not.toContain('+')
    expect(URLENCODED_PATTERN.test(value)).toBe(true)
    expect(decodeSshKeys(value)).toEqual(keys)
  })

  it('is encoded a second time inside a form body (the % becomes %25)', () => {
    const body = encodeForm({ sshkeys: encodeSshKeys(keys[0] as string) })
    expect(body).toContain('%2520')
    expect(decodeForm(body).sshkeys).toBe(encodeSshKeys(keys[0] as string))
  })

  it('any key text survives the round trip', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ minLength: 1 }).filter((s) => s.trim() === s && !/[\r\n]/.test(s)),
          { maxLength: 4 },
        ),
        (list) => {
          const value = encodeSshKeys(list)
          expect(URLENCODED_PATTERN.test(value)).toBe(true)
          expect(decodeSshKeys(value)).toEqual(list.filter(Boolean))
        },
      ),
    )
  })
})

describe('numbered options', () => {
  it('knows the index ranges of the source code', () => {
    expect(indexedKey('net', 31)).toBe('net31')
    expect(() => indexedKey('net', 32)).toThrow(/0 to 31/)
    expect(() => indexedKey('scsi', 31)).toThrow(/0 to 30/)
    expect(indexedKey('ipconfig', 8)).toBe('ipconfig8')
    expect(() => indexedKey('ide', 4)).toThrow()
    expect(splitIndexedKey('unused255')).toEqual({ base: 'unused', index: 255 })
    expect(splitIndexedKey('net07')).toBeUndefined()
    expect(splitIndexedKey('cores')).toBeUndefined()
  })

  it('spreads lists and reads them back in index order', () => {
    const spread = indexed('net', ['virtio,bridge=vmbr0', undefined, 'e1000,bridge=vmbr1'])
    expect(spread).toEqual({ net0: 'virtio,bridge=vmbr0', net2: 'e1000,bridge=vmbr1' })
    expect(listIndexed({ net10: 'b', net2: 'a', name: 'x' }, 'net').map((e) => e.key)).toEqual([
      'net2',
      'net10',
    ])
  })
})

describe('property strings and devices', () => {
  it('parses the default key and refuses duplicates', () => {
    expect([...parsePropertyString('local-lvm:vm-1-disk-0,size=10G', 'file')]).toEqual([
      ['file', 'local-lvm:vm-1-disk-0'],
      ['size', '10G'],
    ])
    expect(() => parsePropertyString('tag=1,tag=2')).toThrow(/duplicate key/)
  })

  it('round-trips maps', () => {
    const key = fc.stringMatching(/^[a-z][a-z_]{0,8}$/)
    const value = fc.stringMatching(/^[A-Za-z0-9:.\-/]{1,12}$/)
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 6 }), (pairs) => {
        const map = new Map(pairs)
        expect(parsePropertyString(formatPropertyString(map))).toEqual(map)
      }),
    )
  })

  it('keeps the MAC when the bridge, VLAN or rate changes', () => {
    const before = 'virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1'
    const after = updateNet(before, { bridge: 'vmbr1', tag: 100, rate: 12.5 })
    expect(parseNet(after)).toMatchObject({
      model: 'virtio',
      macaddr: 'BC:24:11:AA:BB:CC',
      bridge: 'vmbr1',
      tag: 100,
      rate: 12.5,
      firewall: true,
    })
    expect(parseNet(updateNet(after, { tag: null, rate: null }))).not.toHaveProperty('tag')
    expect(parseNet('model=e1000,macaddr=bc:24:11:00:00:01,bridge=vmbr0').macaddr).toBe('BC:24:11:00:00:01')
  })

  it('sets and clears disk limits without touching the rest', () => {
    const drive = 'local-lvm:vm-100-disk-0,iothread=1,size=20G'
    const limited = withDiskLimits(drive, { mbps_rd: 100, iops_wr: 500 })
    expect(parseDrive(limited)).toEqual({
      file: 'local-lvm:vm-100-disk-0',
      options: { iothread: '1', size: '20G', mbps_rd: '100', iops_wr: '500' },
    })
    expect(withDiskLimits(limited, { mbps_rd: 0, iops_wr: 0 })).toBe(drive)
  })

  it('parses and formats sizes', () => {
    expect(parseSize('32G')).toBe(32 * 1024 ** 3)
    expect(parseSize('1.5K')).toBe(1536)
    expect(formatSize(512 * 1024 ** 2)).toBe('512M')
    expect(() => parseSize('-1G')).toThrow()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), (n) => {
        expect(parseSize(formatSize(n * 1024 ** 2))).toBe(n * 1024 ** 2)
      }),
    )
  })

  it('coerces numbers leniently (nextid arrives as a string)', () => {
    expect(toNumber('100')).toBe(100)
    expect(toNumber(100)).toBe(100)
    expect(toNumber('')).toBeUndefined()
    expect(toNumber('abc')).toBeUndefined()
  })
})

describe('UPID', () => {
  it('parses every field', () => {
    const u = parseUpid('UPID:pve-node1:0000C2E1:1A2B3C4D5:65A1B2C3:qmclone:9000:root@pam!ci:')
    expect(u).toEqual({
      raw: 'UPID:pve-node1:0000C2E1:1A2B3C4D5:65A1B2C3:qmclone:9000:root@pam!ci:',
      node: 'pve-node1',
      pid: 0xc2e1,
      pstart: 0x1a2b3c4d5,
      starttime: 0x65a1b2c3,
      type: 'qmclone',
      id: '9000',
      user: 'root@pam!ci',
    })
    expect(parseUpid('UPID:n:00000001:00000002:00000003:vncproxy::root@pam:').id).toBe('')
    expect(() => parseUpid('UPID:bad')).toThrow(/Not a task id/)
    expect(() => parseUpid('UPID:n:1:2:3:t:i:u:')).toThrow()
  })

  it('formats what it parses', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.stringMatching(/^[a-z]{2,10}$/),
        fc.stringMatching(/^[0-9]{0,6}$/),
        (node, pid, start, type, id) => {
          const text = formatUpid({ node, pid, pstart: pid, starttime: start, type, id, user: 'root@pam' })
          expect(parseUpid(text)).toMatchObject({ node, pid, starttime: start, type, id })
        },
      ),
    )
  })

  it('checks exit statuses and recognises dry-run ids', () => {
    expect(exitStatusIsOk('OK')).toBe(true)
    expect(exitStatusIsOk('WARNINGS: 2')).toBe(true)
    expect(exitStatusIsOk("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout")).toBe(false)
    expect(exitStatusIsOk('unexpected status')).toBe(false)
    expect(isDryRunUpid(dryRunUpid('clone', '100'))).toBe(true)
  })
})

describe('ISO groups (seed 003)', () => {
  it('groups by the part before the first dash, else OTHER', () => {
    expect(isoGroup('Debian-12.5.0-amd64-netinst.iso')).toBe('Debian')
    expect(isoGroup('Ubuntu-22.04.4-live-server-amd64.iso')).toBe('Ubuntu')
    expect(isoGroup('proxmox-ve_8.1-2.iso')).toBe('proxmox')
    expect(isoGroup('myfile.iso')).toBe('OTHER')
    const groups = groupIsos([
      { volid: 'i:iso/Ubuntu-24.iso', name: 'Ubuntu-24.iso' },
      { volid: 'i:iso/myfile.iso', name: 'myfile.iso' },
      { volid: 'i:iso/Ubuntu-22.iso', name: 'Ubuntu-22.iso' },
    ])
    expect(Object.keys(groups).sort()).toEqual(['OTHER', 'Ubuntu'])
    expect(groups.Ubuntu?.map((i) => i.name)).toEqual(['Ubuntu-22.iso', 'Ubuntu-24.iso'])
  })
})

describe('IP pools', () => {
  it('hands out IPv4 and IPv6 addresses once, keeps them per service and recycles them', async () => {
    const pool = new MemoryIpPool({
      p: {
        ipv4: { network: '198.51.100.0/29', gateway: '198.51.100.1' },
        ipv6: { network: '2001:db8::/64' },
      },
    })
    const a = await pool.allocate('p', 's1', 4)
    expect(a).toMatchObject({ address: '198.51.100.2', prefix: 29, gateway: '198.51.100.1' })
    expect((await pool.allocate('p', 's1', 4)).address).toBe('198.51.100.2')
    const v6 = await pool.allocate('p', 's1', 6)
    expect(v6.address).toBe('2001:db8::100')
    const others = []
    for (let i = 2; i <= 5; i++) others.push((await pool.allocate('p', `s${i}`, 4)).address)
    expect(new Set([a.address, ...others]).size).toBe(5)
    await expect(pool.allocate('p', 's6', 4)).rejects.toMatchObject({ code: 'PANELKIT_ERR_CAPACITY' })
    await pool.release('s1')
    expect((await pool.allocate('p', 's6', 4)).address).toBe('198.51.100.2')
  })

  it('formats IPv6 addresses canonically', () => {
    expect(bigIntToIpv6(ipv6ToBigInt('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1')
    expect(bigIntToIpv6(ipv6ToBigInt('::1'))).toBe('::1')
    expect(bigIntToIpv6(ipv6ToBigInt('fe80::'))).toBe('fe80::')
  })
})

describe('canonical property strings (pve-common print_property_string)', () => {
  const net = configOptionFormat('net0') ?? {}
  it('prints the default key first (model=MAC through keyAlias), then the keys sorted', () => {
    const map = parsePropertyStringWith('virtio=bc:24:11:00:00:01,tag=20,mtu=1450,bridge=vmbr0,queues=4', net)
    expect([...map.entries()]).toEqual([
      ['model', 'virtio'],
      ['macaddr', 'bc:24:11:00:00:01'],
      ['tag', '20'],
      ['mtu', '1450'],
      ['bridge', 'vmbr0'],
      ['queues', '4'],
    ])
    expect(printPropertyString(map, net)).toBe(
      'virtio=bc:24:11:00:00:01,bridge=vmbr0,mtu=1450,queues=4,tag=20',
    )
    expect(printPropertyString({ model: 'e1000', bridge: 'vmbr1' }, net)).toBe('e1000,bridge=vmbr1')
    expect(
      formatDrive({ file: 'local-lvm:vm-1-disk-0', options: { size: '8G', discard: 'on', cache: 'none' } }),
    ).toBe('local-lvm:vm-1-disk-0,cache=none,discard=on,size=8G')
  })

  it('printing is canonical: print(parse(print(x))) === print(x) for any NIC', () => {
    const hex = fc.integer({ min: 0, max: 255 }).map((b) => b.toString(16).padStart(2, '0'))
    fc.assert(
      fc.property(
        fc.constantFrom(...NET_MODELS),
        fc.array(hex, { minLength: 6, maxLength: 6 }),
        fc.record(
          {
            bridge: fc.constantFrom('vmbr0', 'vmbr1'),
            tag: fc.integer({ min: 1, max: 4094 }),
            mtu: fc.integer({ min: 1, max: 9000 }),
            firewall: fc.boolean(),
            link_down: fc.constantFrom('0', '1'),
          },
          { requiredKeys: [] },
        ),
        (model, bytes, rest) => {
          const { mtu, link_down, ...known } = rest
          const extra: Record<string, string> = {}
          if (mtu !== undefined) extra.mtu = String(mtu)
          if (link_down !== undefined) extra.link_down = link_down
          const text = formatNet({ model, macaddr: bytes.join(':').toUpperCase(), ...known, extra })
          expect(printPropertyString(parsePropertyStringWith(text, net), net)).toBe(text)
          expect(sameNet(text, text.toLowerCase().replace(model.toLowerCase(), model))).toBe(true)
        },
      ),
    )
  })

  it('compares NICs by value: order and MAC case do not matter, values do', () => {
    const a = 'virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20,mtu=1450'
    expect(sameNet(a, 'virtio=bc:24:11:00:00:01,bridge=vmbr0,mtu=1450,tag=20')).toBe(true)
    expect(sameNet(a, 'virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=21,mtu=1450')).toBe(false)
    expect(sameNet(a, 'virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20')).toBe(false)
    expect(sameNet(a, 'e1000=BC:24:11:00:00:01,bridge=vmbr0,tag=20,mtu=1450')).toBe(false)
  })

  it('knows every NIC model of the schema, e1000-8254x included', () => {
    expect(NET_MODELS).toEqual(
      expect.arrayContaining(['e1000-82540em', 'e1000-82544gc', 'e1000-82545em', 'virtio']),
    )
    expect(parseNet('e1000-82544gc=BC:24:11:00:00:02,bridge=vmbr0').model).toBe('e1000-82544gc')
  })
})

describe('config writes that allocate', () => {
  it('a new volume (STORAGE:SIZE) or an import allocates; an existing volume or other keys do not', () => {
    expect(allocatesVolume({ scsi1: 'local-lvm:8,discard=on' })).toBe(true)
    expect(allocatesVolume({ virtio0: 'ceph:0.5' })).toBe(true)
    expect(allocatesVolume({ scsi0: 'local-lvm:0,import-from=nfs:iso/x.qcow2' })).toBe(true)
    expect(allocatesVolume({ scsi1: 'local-lvm:vm-100-disk-1,discard=on' })).toBe(false)
    expect(allocatesVolume({ ide2: 'none,media=cdrom', cores: 4, net0: 'virtio,bridge=vmbr0' })).toBe(false)
  })
})

describe('SSH public keys (checked as ssh-keygen -l would)', () => {
  const ed25519 =
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR1UNgXn4nKnXr4Tyj40HXJyJv5OsA0NoZJLCCqnQz ada@laptop'
  it('accepts real keys, with options before them', () => {
    expect(sshPublicKeyProblem(ed25519)).toBeUndefined()
    expect(sshPublicKeyProblem(`no-pty,from="10.0.0.1" ${ed25519}`)).toBeUndefined()
  })
  it('refuses truncated data, a type that does not match the data, junk', () => {
    expect(sshPublicKeyProblem('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyR1UNg ada')).toBeDefined()
    expect(sshPublicKeyProblem(ed25519.replace('ssh-ed25519 ', 'ssh-rsa '))).toBeDefined()
    expect(sshPublicKeyProblem('not a key')).toBe('unknown key type')
    expect(sshPublicKeyProblem('ssh-ed25519 !!!!')).toBe('key data is not base64')
  })
})
