import { z } from 'zod'
import {
  IntentBodySchema,
  LifecycleActionSchema,
  ActionBodySchema as ModuleActionBodySchema,
  SsoBodySchema,
  WhmcsIdSchema,
} from './module-routes.ts'
import {
  ActionBodySchema,
  CancelBodySchema,
  CreditBodySchema,
  ReconcileBodySchema,
  ReconcileQuerySchema,
  RetryBodySchema,
  ServiceIdSchema,
  SettleBodySchema,
  SyncBodySchema,
} from './schemas.ts'

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas the routes validate
 * requests with (zod 4's `z.toJSONSchema`, whose JSON Schema 2020-12 is OpenAPI 3.1's dialect).
 */

type Json = Record<string, unknown>

function schema(s: z.ZodType): Json {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json
  return rest
}

/** The query of `GET /v1/log`, as the route validates it (a function: server.ts imports this module). */
export const logQuerySchema = () =>
  z
    .object({
      serviceId: ServiceIdSchema,
      connector: z.string().max(64),
      operation: z.string().max(64),
      outcome: z.enum(['ok', 'error', 'dry-run']),
      after: z.coerce.number().int().nonnegative(),
      limit: z.coerce.number().int().min(1).max(1000),
    })
    .partial()
    .strict()

const ClientIdSchema = z.string().regex(/^\d{1,12}$/, 'must be a WHMCS client id')

function queryParams(obj: z.ZodObject): Json[] {
  const js = schema(obj) as { properties?: Record<string, Json>; required?: string[] }
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: (js.required ?? []).includes(name),
    schema: s,
  }))
}

const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', examples: ['PANELKIT_ERR_VALIDATION'] },
        message: { type: 'string' },
        issues: {
          type: 'array',
          items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
}

function op(
  summary: string,
  options: {
    body?: z.ZodType
    params?: Json[]
    ok?: string
    okStatus?: string
    auth?: boolean
    conflict?: boolean
  } = {},
): Json {
  const responses: Json = {
    [options.okStatus ?? '200']: {
      description: options.ok ?? 'OK',
      content: { 'application/json': { schema: { type: 'object' } } },
    },
    '400': { $ref: '#/components/responses/Error' },
    '401': { $ref: '#/components/responses/Error' },
    '404': { $ref: '#/components/responses/Error' },
  }
  if (options.conflict) responses['409'] = { $ref: '#/components/responses/Error' }
  const out: Json = { summary, responses }
  if (options.params?.length) out.parameters = options.params
  if (options.body)
    out.requestBody = { required: true, content: { 'application/json': { schema: schema(options.body) } } }
  if (options.auth === false) out.security = []
  return out
}

export function buildOpenApi(): Json {
  const serviceIdParam = { name: 'id', in: 'path', required: true, schema: schema(ServiceIdSchema) }
  return {
    openapi: '3.1.0',
    info: {
      title: 'panelkit provisioner API',
      version: '0.1.0',
      description:
        'Lifecycle jobs, reverse sync from WHMCS, the module log, drift and the usage/credit ledger.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      responses: {
        Error: { description: 'An error', content: { 'application/json': { schema: errorBody } } },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/health': { get: op('Liveness (no token)', { auth: false }) },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (text exposition format)',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      '/openapi.json': { get: op('This document', { auth: false }) },
      '/v1/status': { get: op('Store, connectors, open and parked jobs, uncertain ledger entries') },
      '/v1/services': {
        get: op('Services with desired and confirmed state', {
          params: [{ name: 'clientId', in: 'query', required: false, schema: schema(ClientIdSchema) }],
        }),
      },
      '/v1/services/{id}': {
        get: op('One service, its jobs and pipeline checkpoints', { params: [serviceIdParam] }),
      },
      '/v1/services/{id}/actions': {
        post: op('Queue a lifecycle change', {
          params: [serviceIdParam],
          body: ActionBodySchema,
          okStatus: '202',
          ok: 'Accepted',
        }),
      },
      '/v1/services/{id}/sso': {
        get: op('Single sign-on: a redirect to the panel (or the URL with format=json)', {
          params: [
            serviceIdParam,
            { name: 'audience', in: 'query', required: false, schema: schema(z.enum(['client', 'admin'])) },
            { name: 'format', in: 'query', required: false, schema: schema(z.enum(['json'])) },
          ],
        }),
      },
      '/v1/sync': {
        post: op('A reverse-sync pass (full, one client, one service)', { body: SyncBodySchema }),
      },
      '/v1/retry': { post: op('Parked jobs back in the queue', { body: RetryBodySchema }) },
      '/v1/cancel': {
        post: op(
          "Cancel a parked or queued job and its service's later open jobs (or all of a service's); the intended state goes back to the confirmed one. `resync` supersedes: a service sync follows. 409 when a job is running",
          { body: CancelBodySchema, conflict: true },
        ),
      },
      '/v1/reconcile': {
        get: op(
          "Services whose settings differ from what today's config gives their plan (the plan; nothing changes)",
          {
            params: queryParams(ReconcileQuerySchema),
          },
        ),
        post: op('The same; with `apply: true` a changePackage is queued for each service without one open', {
          body: ReconcileBodySchema,
        }),
      },
      '/v1/log': { get: op('The module log (redacted)', { params: queryParams(logQuerySchema()) }) },
      '/v1/drift': {
        get: op('WHMCS against what the servers confirmed', {
          params: [{ name: 'clientId', in: 'query', required: false, schema: schema(ClientIdSchema) }],
        }),
      },
      '/v1/ledger': {
        get: op('Usage pushes and deposit credits', {
          params: [
            {
              name: 'state',
              in: 'query',
              required: false,
              schema: schema(z.enum(['pending', 'done', 'uncertain'])),
            },
          ],
        }),
      },
      '/v1/ledger/settle': { post: op('Decide an uncertain ledger entry', { body: SettleBodySchema }) },
      '/v1/clients/{id}/credit': {
        post: op('Credit a deposit to a client (AddCredit exactly once per deposit id)', {
          params: [{ name: 'id', in: 'path', required: true, schema: schema(ClientIdSchema) }],
          body: CreditBodySchema,
          okStatus: '202',
          ok: 'Accepted',
        }),
      },
      // The WHMCS server module's routes (module-routes.ts).
      '/v1/module/info': { get: op("The module's TestConnection and product loader") },
      '/v1/module/usage': { get: op('Disk and bandwidth of every provisioned service (UsageUpdate)') },
      '/v1/module/services/{id}': {
        get: op('The WHMCS admin tab: state, last job, pipeline step', {
          params: [moduleId, moduleClient],
        }),
      },
      '/v1/module/services/{id}/{action}': {
        post: op('A WHMCS module lifecycle call', {
          params: [
            moduleId,
            { name: 'action', in: 'path', required: true, schema: schema(LifecycleActionSchema) },
          ],
          body: IntentBodySchema,
        }),
      },
      '/v1/module/services/{id}/client-area': {
        get: op("The client area's overview data", { params: [moduleId, moduleClient] }),
      },
      '/v1/module/services/{id}/sso': {
        post: op('Single sign-on URL for the client or an admin', {
          params: [moduleId],
          body: SsoBodySchema,
        }),
      },
      '/v1/module/services/{id}/actions': {
        get: op("The connector's custom actions", { params: [moduleId, moduleClient] }),
      },
      '/v1/module/services/{id}/actions/{name}': {
        post: op('Run one custom action', {
          params: [moduleId, { name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          body: ModuleActionBodySchema,
        }),
      },
    },
  }
}

const moduleId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } }
const moduleClient = { name: 'clientId', in: 'query', required: true, schema: schema(WhmcsIdSchema) }
