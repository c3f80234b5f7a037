import { ConflictError, defineConnector, definePipeline, setting } from '../../src/index.ts'
import { remoteMemoryPanel } from '../../src/testing/index.ts'

/**
 * A connector with the bug of issue 17, point 3, for the kill case's own test: its create is a two-step
 * pipeline (create the account on the basic plan, then apply the product's plan), and a create that finds
 * the account answers "already exists" at once instead of resuming the unfinished checkpoint. A kill
 * between the two steps leaves the account on the wrong plan for good.
 */
export function connector(params: unknown) {
  const { url, password } = params as { url: string; password: string }
  const panel = remoteMemoryPanel(url)
  const pipeline = definePipeline<{ username: string }, { serviceId: string; plan: string }>({
    name: 'broken-provision',
    title: 'Provision',
    initialState: 'new',
    steps: [
      {
        name: 'create-account',
        label: 'Create account',
        state: 'created',
        async run({ data, context }) {
          await panel.handle(password, 'create', {
            username: data.username,
            serviceId: context.serviceId,
            plan: 'basic',
          })
          return { status: 'done' }
        },
      },
      {
        name: 'apply-plan',
        label: 'Apply plan',
        state: 'planned',
        async run({ data, context }) {
          await panel.handle(password, 'plan', { username: data.username, plan: context.plan })
          return { status: 'done' }
        },
      },
    ],
  })
  return defineConnector({
    id: 'broken-panel',
    metadata: {
      displayName: 'Broken panel',
      system: 'memory-panel',
      defaultPort: 80,
      defaultSecurePort: 443,
    },
    settings: { plan: setting.dropdown({ label: 'Plan', options: ['basic', 'pro'], default: 'basic' }) },
    operations: {
      async create(ctx) {
        const username = ctx.service.username ?? ''
        const existing = (await panel.handle(password, 'get', { username })) as { serviceId: string } | null
        if (existing) {
          if (existing.serviceId !== ctx.service.serviceId) throw new ConflictError('not ours')
          // The bug: "already exists", without looking at the unfinished checkpoint.
          return { accountId: username, created: false, username }
        }
        await ctx.runPipeline(pipeline, {
          data: { username },
          context: { serviceId: ctx.service.serviceId, plan: ctx.settings.plan },
        })
        return { accountId: username, created: true, username }
      },
    },
  })
}
