import { z } from 'zod'

/**
 * The request schemas of the HTTP API's own routes: the server validates bodies and ids with them,
 * and the OpenAPI document (openapi.ts) is generated from them. Kept apart from server.ts so the
 * document does not import the server that serves it.
 */

/** CR, LF, NUL and the other control characters: no password may hold them (header and CLI injection). */
const CONTROL = /[\u0000-\u001f\u007f]/

export const ActionBodySchema = z
  .object({
    action: z.enum(['create', 'suspend', 'unsuspend', 'terminate', 'changePassword', 'changePackage']),
    password: z
      .string()
      .min(8, 'must be at least 8 characters')
      .max(128)
      .refine((p) => !CONTROL.test(p), 'must not contain control characters (CR, LF, NUL, …)')
      .optional(),
    settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.action === 'changePassword' && !b.password)
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'is required for changePassword' })
    if (b.action === 'changePackage' && !b.settings)
      ctx.addIssue({ code: 'custom', path: ['settings'], message: 'is required for changePackage' })
  })

export const SyncBodySchema = z
  .object({
    clientId: z.string().regex(/^\d{1,12}$/, 'must be a WHMCS client id'),
    email: z.email().max(254),
    serviceId: z.string().regex(/^\d{1,12}$/, 'must be a WHMCS service id'),
  })
  .partial()
  .strict()
  .refine((b) => Object.keys(b).length <= 1, { message: 'give at most one of clientId, email, serviceId' })
export const SettleBodySchema = z
  .object({ key: z.string().min(1).max(200), outcome: z.enum(['done', 'release']) })
  .strict()
export const CreditBodySchema = z
  .object({
    depositId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a plain id'),
    amount: z.string().regex(/^\d{1,9}(\.\d{1,2})?$/, 'must be a decimal such as 12.50'),
    description: z.string().min(1).max(200),
  })
  .strict()
export const RetryBodySchema = z
  .object({ jobId: z.number().int().positive(), serviceId: z.string().min(1).max(64) })
  .partial()
  .strict()
export const ServiceIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a service id')
export const CancelBodySchema = z
  .object({
    jobId: z.number().int().positive(),
    serviceId: ServiceIdSchema,
    reason: z
      .string()
      .min(1)
      .max(200)
      .refine((r) => !CONTROL.test(r), 'must not contain control characters (CR, LF, NUL, …)'),
    /** Supersede: a service pass of the reverse sync right after, so WHMCS's view is planned afresh. */
    resync: z.boolean(),
  })
  .partial()
  .strict()
  .refine((b) => b.jobId !== undefined || b.serviceId !== undefined, {
    message: 'give jobId (that job and the later open jobs of its service) or serviceId (all its open jobs)',
  })
export const ReconcileBodySchema = z
  .object({
    serviceId: ServiceIdSchema,
    /** Queue the changePackage jobs; without it (false) the answer is the plan and nothing changes. */
    apply: z.boolean(),
  })
  .partial()
  .strict()
export const ReconcileQuerySchema = z.object({ serviceId: ServiceIdSchema }).partial().strict()
