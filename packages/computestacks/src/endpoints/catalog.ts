import { z } from 'zod'
import type { Http } from '../http.ts'
import type { PageInfo } from '../pagination.ts'
import {
  type BillingPlan,
  BillingPlanSchema,
  type Location,
  LocationSchema,
  type ServerVersion,
  type UserGroup,
  UserGroupSchema,
  VersionSchema,
} from '../schemas.ts'
import { items, type ListOptions, pages } from './users.ts'

const groupsEnvelope = z.object({ user_groups: z.array(UserGroupSchema) })
const plansEnvelope = z.object({ billing_plans: z.array(BillingPlanSchema) })
const locationsEnvelope = z.object({ locations: z.array(LocationSchema) })

export function userGroupsEndpoint(http: Http, defaultPerPage: number) {
  return {
    pages(options: ListOptions = {}): AsyncGenerator<PageInfo<UserGroup>> {
      return pages(http, 'admin/user_groups', (body) => groupsEnvelope.parse(body).user_groups, {
        ...options,
        defaultPerPage,
      })
    },
    /** Every user group, every page (ComputeStacks' own module only ever saw the first 30). */
    list(options: ListOptions = {}): AsyncGenerator<UserGroup> {
      return items(this.pages(options))
    },
    async get(id: number, options: { signal?: AbortSignal } = {}): Promise<UserGroup> {
      const response = await http.send({
        method: 'GET',
        path: `admin/user_groups/${id}`,
        action: 'GET /api/admin/user_groups/{id}',
        parse: (body) => UserGroupSchema.parse((body as { user_group?: unknown })?.user_group),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
  }
}

export function locationsEndpoint(http: Http) {
  return {
    /** All locations (this collection is not paginated). */
    async list(options: { signal?: AbortSignal } = {}): Promise<Location[]> {
      const response = await http.send({
        method: 'GET',
        path: 'admin/locations',
        parse: (body) => locationsEnvelope.parse(body).locations,
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
  }
}

export function billingPlansEndpoint(http: Http, defaultPerPage: number) {
  return {
    pages(options: ListOptions = {}): AsyncGenerator<PageInfo<BillingPlan>> {
      return pages(http, 'admin/billing_plans', (body) => plansEnvelope.parse(body).billing_plans, {
        ...options,
        defaultPerPage,
      })
    },
    list(options: ListOptions = {}): AsyncGenerator<BillingPlan> {
      return items(this.pages(options))
    },
    /** One plan with its resources, phases and prices (amounts as exact decimal strings). */
    async get(id: number, options: { signal?: AbortSignal } = {}): Promise<BillingPlan> {
      const response = await http.send({
        method: 'GET',
        path: `admin/billing_plans/${id}`,
        action: 'GET /api/admin/billing_plans/{id}',
        parse: (body) => BillingPlanSchema.parse((body as { billing_plan?: unknown })?.billing_plan),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
  }
}

export async function getVersion(http: Http, options: { signal?: AbortSignal } = {}): Promise<ServerVersion> {
  const response = await http.send({
    method: 'GET',
    path: 'version',
    parse: (body) => VersionSchema.parse(body),
    ...(options.signal ? { signal: options.signal } : {}),
  })
  return response.data
}
