import { describe, expect, it } from 'vitest'
import { MemoryAssignmentStore, placeService, type ServerGroup } from '../../src/placement.ts'

const servers = [
  { id: 'a', maxAccounts: 2 },
  { id: 'b', maxAccounts: 4 },
  { id: 'c', maxAccounts: 4 },
]

async function placeMany(group: ServerGroup, n: number) {
  const store = new MemoryAssignmentStore()
  const chosen: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await placeService({
      group,
      serviceId: `s${i}`,
      assignments: store,
      countServices: (id) => store.count(id),
    })
    if (!r.ok) throw r.error
    chosen.push(r.serverId)
  }
  return { chosen, store }
}

describe('placement', () => {
  it('least-full picks the emptiest server by ratio', async () => {
    const { chosen } = await placeMany({ id: 'g', fillType: 'least-full', servers }, 6)
    expect(chosen.filter((s) => s === 'a').length).toBe(2)
    expect(chosen.slice(0, 3)).toEqual(['a', 'b', 'c'])
  })

  it('fill-until-full fills servers in order', async () => {
    const { chosen } = await placeMany({ id: 'g', fillType: 'fill-until-full', servers }, 7)
    expect(chosen).toEqual(['a', 'a', 'b', 'b', 'b', 'b', 'c'])
  })

  it('round-robin rotates over servers that fit', async () => {
    const { chosen } = await placeMany({ id: 'g', fillType: 'round-robin', servers }, 4)
    expect(chosen).toEqual(['a', 'b', 'c', 'a'])
  })

  it('keeps a service on its server (sticky), even when that server is now full', async () => {
    const store = new MemoryAssignmentStore()
    await store.set('s1', 'a')
    const r = await placeService({
      group: { id: 'g', fillType: 'least-full', servers },
      serviceId: 's1',
      assignments: store,
      countServices: () => 100,
    })
    expect(r).toMatchObject({ ok: true, serverId: 'a', sticky: true })
  })

  it('says why nothing fits', async () => {
    const store = new MemoryAssignmentStore()
    const r = await placeService({
      group: {
        id: 'g',
        fillType: 'least-full',
        servers: [{ id: 'a', maxAccounts: 1 }, { id: 'b', enabled: false }, { id: 'c' }],
      },
      serviceId: 'new',
      assignments: store,
      countServices: () => 1,
      probe: async (s) =>
        s.id === 'c' ? { fits: false, reason: 'no storage left on local-lvm' } : { fits: true },
    })
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.error.kind).toBe('CAPACITY')
      expect(r.error.message).toContain('a: full: 1 of 1 services')
      expect(r.error.message).toContain('b: disabled')
      expect(r.error.message).toContain('c: no storage left on local-lvm')
    }
    expect(await store.get('new')).toBeUndefined()
  })
})
