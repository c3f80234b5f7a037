import { z } from 'zod'

/**
 * The attributes and forms the connectors rely on that no public source confirms (notes §7). Each has a
 * default and an alternative an operator can select per server; when a server refuses the one in use,
 * the COMMAND error names the option to change (see the README's table of unconfirmed facts).
 */
export const AxigenDialectSchema = z.object({
  /** ContactInfo attribute that holds panelkit's ownership/suspension marker (`notes` is not in the notes). */
  markerAttribute: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,63}$/, 'must be an attribute name')
    .default('notes'),
  /**
   * How an account gets its class: `SET accountClassName <c>` (the attribute appears in SHOW, the command
   * is not in the HELP dumps, notes §3.2) or `INHERIT SETTINGS FROM accountClass <c>` (in the HELP).
   */
  classAssignment: z.enum(['accountClassName', 'inherit-settings']).default('accountClassName'),
  /**
   * The migration source under `CONFIG MigrationData`: one `remoteServer host:port` attribute, or
   * `remoteImapHost` and `remoteImapPort` (the names the notes give).
   */
  migrationAttributes: z.enum(['remoteServer', 'remoteImapHost']).default('remoteServer'),
  /** How an empty service list is written (suspension): `()` or `( )` (notes §7.6: unknown). */
  emptyServiceList: z.enum(['()', '( )']).default('()'),
  /** Unit of a bare `Mbox size` number (notes §7.5: unknown; a unit printed beside it wins). */
  mboxSizeUnit: z.enum(['KB', 'bytes']).default('KB'),
})

export type AxigenDialect = z.infer<typeof AxigenDialectSchema>
export type AxigenDialectInput = z.input<typeof AxigenDialectSchema>

export const DEFAULT_DIALECT: AxigenDialect = AxigenDialectSchema.parse({})

/** What to tell the operator when the server refuses the attribute a dialect option chose. */
export function refusalHint(option: keyof AxigenDialect, dialect: AxigenDialect): string {
  switch (option) {
    case 'markerAttribute':
      return (
        `panelkit keeps its ownership marker in the ContactInfo attribute "${dialect.markerAttribute}", ` +
        'which this server refused: set the server option markerAttribute to a free-text ContactInfo ' +
        'attribute your Axigen accepts.'
      )
    case 'classAssignment':
      return dialect.classAssignment === 'accountClassName'
        ? 'This server refused SET accountClassName: set the server option classAssignment to "inherit-settings" (INHERIT SETTINGS FROM accountClass), or leave the product\'s account class empty.'
        : 'This server refused INHERIT SETTINGS FROM accountClass: set the server option classAssignment to "accountClassName", or leave the product\'s account class empty.'
    case 'migrationAttributes':
      return dialect.migrationAttributes === 'remoteServer'
        ? 'This server refused SET remoteServer in MigrationData: set the server option migrationAttributes to "remoteImapHost" (remoteImapHost and remoteImapPort), or clear the product\'s migration source.'
        : 'This server refused remoteImapHost/remoteImapPort in MigrationData: set the server option migrationAttributes to "remoteServer", or clear the product\'s migration source.'
    case 'emptyServiceList':
      return `This server refused the empty service list written as ${dialect.emptyServiceList}: set the server option emptyServiceList to "${dialect.emptyServiceList === '()' ? '( )' : '()'}".`
    case 'mboxSizeUnit':
      return 'Check the unit of Mbox size in SHOW RegistryInformation and set the server option mboxSizeUnit.'
  }
}
