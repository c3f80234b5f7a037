import { describe, expect, it } from 'vitest'
import { pageInfo, pageOf, parseLinkHeader } from '../../src/pagination.ts'

const link = (rels: Record<string, number>) =>
  Object.entries(rels)
    .map(([rel, page]) => `<https://cs.example.com/api/admin/users?page=${page}&per_page=30>; rel="${rel}"`)
    .join(', ')

describe('Link, Total and Per-Page headers', () => {
  it('parses RFC 8288 links, including several rels and commas inside URLs', () => {
    const parsed = parseLinkHeader(
      '<https://x/api/a?page=2&q=a,b>; rel="next", <https://x/api/a?page=9>; rel="last end"',
    )
    expect(parsed.next).toBe('https://x/api/a?page=2&q=a,b')
    expect(parsed.last).toBe('https://x/api/a?page=9')
    expect(parsed.end).toBe('https://x/api/a?page=9')
    expect(parseLinkHeader(undefined)).toEqual({})
    expect(parseLinkHeader('garbage')).toEqual({})
    expect(pageOf('/api/admin/users?per_page=3&page=4')).toBe(4)
    expect(pageOf('/api/admin/users')).toBeUndefined()
  })

  it('follows the next link when there is one', () => {
    const info = pageInfo([1, 2], 1, 2, { link: link({ next: 2, last: 5 }), total: '10', 'per-page': '2' })
    expect(info.nextPage).toBe(2)
    expect(info.total).toBe(10)
  })

  it('stops on the last page even when Total disagrees', () => {
    const info = pageInfo([1], 5, 2, { link: link({ first: 1, prev: 4 }), total: '99' })
    expect(info.nextPage).toBeUndefined()
  })

  it('falls back to Total, then to a full page, without a Link header', () => {
    expect(pageInfo([1, 2], 1, 2, { total: '3' }).nextPage).toBe(2)
    expect(pageInfo([3], 2, 2, { total: '3' }).nextPage).toBeUndefined()
    // The server may clamp per_page: its Per-Page header wins over what was asked.
    expect(pageInfo(new Array(30).fill(0), 1, 100, { 'per-page': '30' }).nextPage).toBe(2)
    expect(pageInfo([1], 1, 100, {}).nextPage).toBeUndefined()
    expect(pageInfo([], 3, 2, {}).nextPage).toBeUndefined()
  })

  it('refuses a next link that points backwards (a loop)', () => {
    expect(() => pageInfo([1], 3, 1, { link: link({ next: 3 }) })).toThrow(/loop/)
    expect(() => pageInfo([1], 3, 1, { link: '<https://x/api/a>; rel="next"' })).toThrow(/Unusable/)
  })
})
