import { isPanelkitError, ValidationError } from '@panelkit/core'
import { z } from 'zod'
import { isAccountEmail } from '../email.ts'
import type { Http, HttpResponse, Query } from '../http.ts'
import { type PageInfo, pageInfo } from '../pagination.ts'
import {
  type ApiCredential,
  ApiCredentialSchema,
  type BillingUsage,
  BillingUsageSchema,
  type CreateUserInput,
  CreateUserInputSchema,
  parseUser,
  parseUsers,
  type SsoToken,
  SsoTokenSchema,
  type UpdateUserInput,
  UpdateUserInputSchema,
  type User,
  UserSchema,
  userWireBody,
} from '../schemas.ts'

/**
 * How to name a user in a path. ComputeStacks looks users up by id by default, or by base64 email,
 * external id or a WHMCS label when asked (`locate_user` in the controller).
 */
export type UserSelector =
  | number
  | { id: number }
  | { email: string }
  | { externalId: string | number }
  | { whmcsServiceId: string | number }
  | { whmcsClientId: string | number }

export function describeSelector(selector: UserSelector): string {
  if (typeof selector === 'number') return `user ${selector}`
  if ('id' in selector) return `user ${selector.id}`
  if ('email' in selector) return `user with email ${selector.email}`
  if ('externalId' in selector) return `user with external id ${selector.externalId}`
  if ('whmcsServiceId' in selector) return `user of WHMCS service ${selector.whmcsServiceId}`
  return `user of WHMCS client ${selector.whmcsClientId}`
}

/** Path and query for a selector. Emails go as strict base64 (no line breaks), URL-encoded. */
export function selectorPath(selector: UserSelector, suffix = ''): { path: string; query: Query } {
  checkSelector(selector)
  const tail = suffix ? `/${suffix}` : ''
  if (typeof selector === 'number') return { path: `admin/users/${selector}${tail}`, query: {} }
  if ('id' in selector) return { path: `admin/users/${selector.id}${tail}`, query: {} }
  if ('email' in selector) {
    const encoded = encodeURIComponent(Buffer.from(selector.email, 'utf8').toString('base64'))
    return { path: `admin/users/${encoded}${tail}`, query: { find_by_email: 'true' } }
  }
  if ('externalId' in selector) {
    return {
      path: `admin/users/${encodeURIComponent(String(selector.externalId))}${tail}`,
      query: { find_by_external_id: 'true' },
    }
  }
  const [label, value] =
    'whmcsServiceId' in selector
      ? ['whmcs_service_id', selector.whmcsServiceId]
      : ['whmcs_client_id', selector.whmcsClientId]
  if (!/^\d+$/.test(String(value))) {
    // The server runs the value through to_i and matches JSON numbers only: anything else would find user 0.
    throw new ValidationError(`A WHMCS label lookup needs a numeric id, not ${JSON.stringify(value)}`, [
      { path: 'selector', message: 'must be numeric' },
    ])
  }
  return { path: `admin/users/${value}${tail}`, query: { find_by_label: label } }
}

const CONTROL = /[\u0000-\u001f\u007f]/

function refuseSelector(message: string): never {
  throw new ValidationError(`Invalid user selector: ${message}`, [{ path: 'selector', message }])
}

/**
 * An empty or odd selector would reach another endpoint (`admin/users/` is the list) or another user,
 * so it is refused before anything is sent.
 */
function checkSelector(selector: UserSelector): void {
  if (
    typeof selector === 'number' ||
    (typeof selector === 'object' && selector !== null && 'id' in selector)
  ) {
    const id = typeof selector === 'number' ? selector : selector.id
    if (!Number.isSafeInteger(id) || id <= 0) refuseSelector('the id must be a positive whole number')
    return
  }
  if (typeof selector !== 'object' || selector === null) refuseSelector('must be an id or a lookup object')
  if ('email' in selector) {
    const email = selector.email
    if (typeof email !== 'string' || !isAccountEmail(email))
      refuseSelector('the email must be an email address')
    return
  }
  if ('externalId' in selector) {
    const value = selector.externalId
    const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value
    if (typeof text !== 'string' || text.trim() === '' || CONTROL.test(text))
      refuseSelector('the external id must be non-empty text without control characters')
  }
}

function parseInput<S extends z.ZodType>(schema: S, input: unknown, root: string): z.output<S> {
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const issues = parsed.error.issues.map((i) => ({
    path: [root, ...i.path.map(String)].join('.'),
    message: i.message,
  }))
  throw new ValidationError(
    `Invalid ${root}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
  )
}

const userEnvelope = (body: unknown) => parseUser((body as { user?: unknown } | undefined)?.user)
const usagesEnvelope = z.object({ billing_usages: z.array(BillingUsageSchema) })

export interface ListOptions {
  /** Page size asked for; the server's default is 30 and it has no maximum. */
  perPage?: number
  /** First page to fetch (1-based). */
  startPage?: number
  signal?: AbortSignal
}

/** Walks every page of a paginated collection, one request per page, yielding pages. */
export async function* pages<T>(
  http: Http,
  path: string,
  parseItems: (body: unknown) => T[],
  options: ListOptions & { query?: Query; defaultPerPage: number },
): AsyncGenerator<PageInfo<T>> {
  const perPage = options.perPage ?? options.defaultPerPage
  let page: number | undefined = options.startPage ?? 1
  while (page !== undefined) {
    const current: number = page
    const response: HttpResponse<T[]> = await http.send<T[]>({
      method: 'GET',
      path,
      query: { ...options.query, page: current, per_page: perPage },
      parse: parseItems,
      keepBody: false,
      ...(options.signal ? { signal: options.signal } : {}),
    })
    const info = pageInfo(response.data, current, perPage, response.headers)
    yield info
    page = info.nextPage
  }
}

/** Item by item; each item is let go of once handed out, so a page is not held until its end. */
export async function* items<T>(source: AsyncIterable<PageInfo<T>>): AsyncGenerator<T> {
  for await (const page of source) {
    const list = page.items
    for (let i = 0; i < list.length; i++) {
      const item = list[i] as T
      list[i] = undefined as T
      yield item
    }
  }
}

function fakeUser(id: number, fields: Record<string, unknown>): User {
  const user = fields.user as Record<string, unknown>
  return UserSchema.parse({
    id,
    email: String(user.email ?? 'dry-run@example.invalid'),
    fname: user.fname ?? null,
    lname: user.lname ?? null,
    active: user.active ?? true,
    external_id: user.external_id ?? null,
    currency: user.currency ?? null,
    labels: user.merge_labels ?? {},
    user_group_id: user.user_group_id ?? null,
  })
}

export function usersEndpoint(http: Http, defaultPerPage: number) {
  const dry =
    <T>(data: T, status = 200) =>
    (): HttpResponse<T> => ({ status, headers: {}, body: undefined, data })

  async function get(selector: UserSelector, options: { balance?: boolean; signal?: AbortSignal } = {}) {
    const { path, query } = selectorPath(selector)
    const response = await http.send({
      method: 'GET',
      path,
      query: { ...(options.balance ? { include: 'balance' } : {}), ...query },
      parse: userEnvelope,
      action: `GET /api/admin/users/{${Object.keys(query)[0] ?? 'id'}}`,
      ...(options.signal ? { signal: options.signal } : {}),
    })
    return response.data
  }

  async function find(selector: UserSelector, options: { balance?: boolean; signal?: AbortSignal } = {}) {
    try {
      return await get(selector, options)
    } catch (error) {
      if (isPanelkitError(error) && error.kind === 'NOT_FOUND') return undefined
      throw error
    }
  }

  return {
    /** Every user, every page (sorted by last name, first name on the server). */
    list(options: ListOptions & { balance?: boolean } = {}): AsyncGenerator<User> {
      return items(this.pages(options))
    },
    pages(options: ListOptions & { balance?: boolean } = {}): AsyncGenerator<PageInfo<User>> {
      return pages(http, 'admin/users', parseUsers, {
        ...options,
        defaultPerPage,
        ...(options.balance ? { query: { include: 'balance' } } : {}),
      })
    },
    get,
    find,
    /**
     * Finds a user by email. The server stores emails lower-cased (Devise) but compares them exactly,
     * so the lower-cased address is tried first and the address as given second.
     */
    async findByEmail(email: string, options: { balance?: boolean; signal?: AbortSignal } = {}) {
      const lower = email.trim().toLowerCase()
      const found = await find({ email: lower }, options)
      if (found || lower === email) return found
      return find({ email }, options)
    },
    async create(input: CreateUserInput, options: { signal?: AbortSignal } = {}) {
      const parsed = parseInput(CreateUserInputSchema, input, 'user')
      const body = userWireBody(parsed)
      if (parsed.password) http.options.recorder.redactor.addValue(parsed.password)
      const response = await http.send({
        method: 'POST',
        path: 'admin/users',
        body,
        parse: userEnvelope,
        dryRunResult: dry(fakeUser(0, body), 201),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
    async update(selector: UserSelector, input: UpdateUserInput, options: { signal?: AbortSignal } = {}) {
      const parsed = parseInput(UpdateUserInputSchema, input, 'user')
      if (parsed.password) http.options.recorder.redactor.addValue(parsed.password)
      const { path, query } = selectorPath(selector)
      const body = userWireBody(parsed)
      const response = await http.send({
        method: 'PATCH',
        path,
        query,
        body,
        parse: userEnvelope,
        action: `PATCH /api/admin/users/{${Object.keys(query)[0] ?? 'id'}}`,
        // Setting fields to values is safe to repeat.
        idempotent: true,
        dryRunResult: dry(fakeUser(typeof selector === 'number' ? selector : 0, body)),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
    suspend(selector: UserSelector, options: { signal?: AbortSignal } = {}) {
      return this.update(selector, { active: false }, options)
    },
    unsuspend(selector: UserSelector, options: { signal?: AbortSignal } = {}) {
      return this.update(selector, { active: true }, options)
    },
    /** Deletes the user; throws NotFoundError when there is none. */
    async delete(selector: UserSelector, options: { signal?: AbortSignal } = {}) {
      const { path, query } = selectorPath(selector)
      await http.send({
        method: 'DELETE',
        path,
        query,
        action: `DELETE /api/admin/users/{${Object.keys(query)[0] ?? 'id'}}`,
        dryRunResult: dry(undefined, 204),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    },
    /**
     * A one-minute login token (each call replaces the previous one). Use `loginUrl` to turn it into
     * the address that signs the user in.
     */
    async ssoToken(selector: UserSelector, options: { signal?: AbortSignal } = {}): Promise<SsoToken> {
      const { path, query } = selectorPath(selector, 'user_sso')
      const response = await http.send({
        method: 'POST',
        path,
        query,
        action: 'POST /api/admin/users/{id}/user_sso',
        parse: (body) => {
          const token = SsoTokenSchema.parse(body)
          http.options.recorder.redactor.addValue(token.token)
          return token
        },
        dryRunResult: dry({ username: 'dry-run@example.invalid', token: 'dry-run', expires: null }, 201),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
    /** Creates API credentials for a user; the secret is shown only in this response. */
    async createApiCredential(
      selector: UserSelector,
      name = '',
      options: { signal?: AbortSignal } = {},
    ): Promise<ApiCredential> {
      const { path, query } = selectorPath(selector, 'api_credentials')
      const response = await http.send({
        method: 'POST',
        path,
        query,
        body: { api_credential: { name } },
        action: 'POST /api/admin/users/{id}/api_credentials',
        parse: (body) => {
          const credential = ApiCredentialSchema.parse((body as { api_credential?: unknown })?.api_credential)
          http.options.recorder.redactor.addValue(credential.apiSecret)
          return credential
        },
        dryRunResult: dry({ id: 0, apiKey: 'dry-run', apiSecret: null }, 201),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      return response.data
    },
    /** Every billing usage row of a user (by numeric id only: the server offers no other lookup here). */
    billingUsages(userId: number, options: ListOptions = {}): AsyncGenerator<BillingUsage> {
      return items(
        pages(
          http,
          `admin/users/${userId}/billing_usages`,
          (body) => usagesEnvelope.parse(body).billing_usages,
          {
            ...options,
            defaultPerPage,
          },
        ),
      )
    },
  }
}

export type UsersEndpoint = ReturnType<typeof usersEndpoint>
