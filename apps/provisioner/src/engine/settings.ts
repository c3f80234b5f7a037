import { createHmac } from 'node:crypto'
import { type Failure, secretSettingKeys, settingsSchema } from '@panelkit/core'
import { type EngineContext, permanent, productFor } from './context.ts'
import type { Job } from './jobs.ts'
import { type ServiceRecord, settingsFor } from './services.ts'

/**
 * The settings a job runs with, from today's config: the product's settings, the plan's over them
 * (the plan the job was queued for; else the one the service has), then an operator's overrides. A
 * job keeps what identifies its intent (operation, plan), never a copy of the settings, so fixing the
 * config and running `retry` runs it with the fix. A product no longer in the config runs with the
 * settings the service was last provisioned with.
 */
export function resolveSettings(
  ctx: EngineContext,
  job: Pick<Job, 'operation' | 'payload'>,
  service: ServiceRecord,
): { ok: true; settings: Record<string, unknown> } | { ok: false; error: Failure } {
  const product = productFor(ctx, service.productId)
  if (!product) return { ok: true, settings: service.confirmedSettings ?? service.settings }
  const packaged = job.operation === 'create' || job.operation === 'changePackage'
  const plan =
    packaged && typeof job.payload.plan === 'string'
      ? job.payload.plan
      : ((packaged ? service.plan : (service.confirmedPlan ?? service.plan)) ?? undefined)
  if (plan !== undefined && product.plans && !(plan in product.plans.values))
    return permanent(
      `Plan ${plan} of service ${service.serviceId} is not in the config (products[whmcsProductId=${product.whmcsProductId}].plans.values): add it, then \`provisioner retry --service ${service.serviceId}\``,
    )
  const overrides = service.context.settingsOverrides as Record<string, unknown> | undefined
  return { ok: true, settings: { ...settingsFor(product, plan), ...(overrides ?? {}) } }
}

/**
 * Settings as the store may keep them: a secret setting (a password-type one) becomes a keyed
 * fingerprint, so a change to it is still seen as drift without the value being stored.
 */
export function recordable(
  ctx: EngineContext,
  connector: string,
  settings: Record<string, unknown>,
): Record<string, unknown> {
  const definition = ctx.definitions.get(connector)
  const secret = definition ? secretSettingKeys(definition.settings) : []
  // Compared as the connector reads them: defaults filled in, numbers from strings.
  const parsed = definition ? settingsSchema(definition.settings).safeParse(settings) : undefined
  const normal = parsed?.success ? { ...settings, ...(parsed.data as Record<string, unknown>) } : settings
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(normal)) {
    out[k] =
      secret.includes(k) && typeof v === 'string' && v !== ''
        ? `hmac:${createHmac('sha256', ctx.passwordKey || 'panelkit')
            .update(v)
            .digest('base64url')
            .slice(0, 22)}`
        : v
  }
  return out
}
