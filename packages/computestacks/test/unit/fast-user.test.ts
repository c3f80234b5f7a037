import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fastUser, parseUsers, UserSchema } from '../../src/schemas.ts'

/** Values a field may hold on the wire, the expected ones and some it must refuse. */
const anyValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.constantFrom('12.50', '1e-7', ' 3 ', 'abc', '', '-0.0'),
  fc.constant({}),
  fc.constant([]),
  fc.record({ id: fc.integer(), name: fc.option(fc.string(), { nil: null }) }),
)
const optString = fc.option(fc.string(), { nil: null })
const decimal = fc.oneof(
  fc.constantFrom('0.0', '12.50', '3', '0.0069'),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)

const wellFormed = fc.record(
  {
    id: fc.nat(),
    email: fc.string(),
    active: fc.boolean(),
    fname: optString,
    lname: optString,
    is_admin: fc.option(fc.boolean(), { nil: null }),
    external_id: fc.oneof(optString, fc.integer()),
    currency: optString,
    currency_symbol: optString,
    labels: fc.option(
      fc.record({
        whmcs: fc.record({
          client_id: fc.oneof(fc.nat(), fc.string()),
          service_id: fc.oneof(fc.nat(), fc.string()),
        }),
      }),
      { nil: null },
    ),
    user_group_id: fc.option(fc.nat(), { nil: null }),
    user_group: fc.option(fc.record({ id: fc.nat(), name: optString }), { nil: null }),
    billing_plan: fc.option(fc.record({ id: fc.nat(), name: fc.string() }), { nil: null }),
    failed_attempts: fc.nat(),
    created_at: optString,
    run_rate: fc.option(decimal, { nil: null }),
    unprocessed_usage: fc.option(decimal, { nil: null }),
    services: fc.option(fc.record({ deployments: fc.nat(), containers: fc.nat(), dns_zones: fc.nat() }), {
      nil: null,
    }),
  },
  { requiredKeys: ['id', 'email', 'active'] },
)

describe('the hand-checked user fast path', () => {
  it('property: returns exactly what zod returns for every well-formed user', () => {
    fc.assert(
      fc.property(wellFormed, (wire) => {
        const fast = fastUser(wire)
        expect(fast).toBeDefined()
        expect(fast).toEqual(UserSchema.parse(wire))
      }),
      { numRuns: 500 },
    )
  })

  it('property: never accepts what zod refuses, and agrees whenever it accepts', () => {
    const perturbed = fc
      .tuple(
        wellFormed,
        fc.constantFrom(
          'id',
          'email',
          'active',
          'fname',
          'external_id',
          'labels',
          'user_group',
          'run_rate',
          'services',
          'failed_attempts',
          'is_admin',
        ),
        anyValue,
      )
      .map(([wire, key, value]) => ({ ...wire, [key]: value }))
    fc.assert(
      fc.property(perturbed, (wire) => {
        const fast = fastUser(wire)
        const slow = UserSchema.safeParse(wire)
        if (fast !== undefined) {
          expect(slow.success).toBe(true)
          expect(fast).toEqual(slow.data)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('a page with one bad user is refused with the index zod names', () => {
    const good = { id: 1, email: 'a@example.com', active: true }
    expect(parseUsers({ users: [good, good] })).toHaveLength(2)
    expect(() => parseUsers({ users: [good, { ...good, id: 'x' }] })).toThrow(/users.*1.*id|id/)
    expect(() => parseUsers({ nothing: [] })).toThrow()
  })
})
