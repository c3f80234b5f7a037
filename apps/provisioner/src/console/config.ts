import { Cron } from 'croner'
import { z } from 'zod'

const Address = z.email({ error: 'must be an e-mail address such as ops@example.net' })

/**
 * E-mail notifications through an SMTP server (nodemailer). The password comes from the environment
 * (`pass: ${SMTP_PASSWORD}`); it is masked in every log and never part of an error.
 */
export const SmtpConfigSchema = z
  .object({
    host: z.string().min(1).max(253),
    /** 587 (submission, STARTTLS) by default; 465 with `secure: true`; 25 for a local relay. */
    port: z.number().int().min(1).max(65535).default(587),
    /** TLS from the first byte (SMTPS, usually port 465). */
    secure: z.boolean().default(false),
    /**
     * Without `secure`: `required` (the default) refuses a server that does not offer STARTTLS,
     * `opportunistic` upgrades when offered, `never` stays in plain text (a relay on the same host).
     */
    starttls: z.enum(['required', 'opportunistic', 'never']).default('required'),
    /** A PEM CA certificate to trust (a private CA), instead of the system's. */
    ca: z.string().optional(),
    from: Address,
    to: z.union([Address.transform((a) => [a]), z.array(Address).min(1)]),
    auth: z
      .object({ user: z.string().min(1), pass: z.string().min(1) })
      .strict()
      .optional(),
    /** Subject prefix, e.g. the installation's name. */
    subjectPrefix: z.string().max(60).default('[provisioner]'),
  })
  .strict()
export type SmtpConfig = z.infer<typeof SmtpConfigSchema>

/**
 * The console and monitoring block of the config (`console:`). Optional: without it the console is
 * served at /console and /metrics needs a bearer token, like the API.
 */
export const ConsoleConfigSchema = z
  .object({
    /** Serve the operator console at /console. */
    enabled: z.boolean().default(true),
    /** Minutes a console session lasts without use. */
    sessionMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .default(60),
    /** Mark the session cookie Secure even when the request did not come over TLS (behind a TLS proxy). */
    secureCookie: z.boolean().default(false),
    /** How long the service page waits for the server when it asks for the service's live state. */
    probeTimeoutMs: z.number().int().min(200).max(60_000).default(5000),
    /** The console's address as operators reach it, for links in notifications. */
    publicUrl: z.url().optional(),
    metrics: z
      .object({
        /**
         * A separate address for GET /metrics, without a token (one monitoring alone can reach, e.g.
         * `10.0.0.5:9464`). Without it /metrics is on the API's address and needs a bearer token.
         */
        listen: z
          .string()
          .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port')
          .optional(),
      })
      .strict()
      .default({}),
    /**
     * Who is told when a job is parked, a ledger entry becomes uncertain or a sync pass fails: a
     * webhook, e-mail through an SMTP server, or both.
     */
    notify: z
      .object({
        webhook: z.url({ error: 'must be a URL such as https://hooks.example.com/provisioner' }).optional(),
        /** Extra headers for the webhook (e.g. an authorization header from the environment). */
        headers: z.record(z.string(), z.string()).default({}),
        timeoutMs: z.number().int().min(100).max(60_000).default(5000),
        email: SmtpConfigSchema.optional(),
      })
      .strict()
      .refine((n) => n.webhook !== undefined || n.email !== undefined, {
        message: 'give a webhook, an email block, or both',
      })
      .optional(),
  })
  .strict()
export type ConsoleConfig = z.infer<typeof ConsoleConfigSchema>

export const DEFAULT_CONSOLE_CONFIG: ConsoleConfig = ConsoleConfigSchema.parse({})

const CronSchema = z.string().refine(
  (v) => {
    try {
      new Cron(v, { paused: true, timezone: 'UTC' }).stop()
      return true
    } catch {
      return false
    }
  },
  { message: 'must be a cron expression such as "*/15 * * * *" (UTC; an optional first field for seconds)' },
)

/**
 * Timers for the connectors' scheduled admin actions, per product (`schedules:`): Proxmox's
 * `scheduledBackup` (the client's days and time) and `cleanupSnapshots` (expired snapshots).
 */
export const SchedulesConfigSchema = z.array(
  z
    .object({
      /** The WHMCS product id (`products[].whmcsProductId`). */
      product: z.union([z.number().int().positive(), z.string().regex(/^\d{1,12}$/)]).transform(String),
      backup: z
        .object({
          /** How often the idempotent `scheduledBackup` tick runs. */
          cron: CronSchema.default('*/15 * * * *'),
          days: z.array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])).min(1),
          /** Not before this time of day (UTC). */
          after: z
            .string()
            .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM')
            .optional(),
        })
        .strict()
        .optional(),
      snapshotCleanup: z
        .object({ cron: CronSchema.default('0 3 * * *') })
        .strict()
        .optional(),
    })
    .strict(),
)
export type SchedulesConfig = z.infer<typeof SchedulesConfigSchema>
