import type { TableLayout } from '../protocol/output.ts'
import type { SimulatorTexts } from './texts.ts'

/**
 * Legal differences between Axigen servers that the protocol notes leave open. The default simulator
 * prints one shape of everything; each switch here makes it print or refuse another shape a real server
 * may have, so a client proven against every variation does not depend on the simulator's choices.
 * Each field names the section of the Axigen protocol notes (axigen.md in the project's notes) that leaves it open.
 */
export interface SimulatorVariations {
  /** Column layout of every table (§2.4, §7.4: widths unknown). Default `aligned`. */
  tableLayout?: TableLayout
  /** Columns after the name in `LIST AllDomains` (§2.4: S8 saw a status word). Default `['status']`. */
  allDomainsColumns?: readonly DomainColumn[]
  /** Columns after the name in `LIST Domains` (§2.4: S5 read two sizes). Default `['used', 'total']`. */
  domainsColumns?: readonly DomainColumn[]
  /** Columns after the name in `LIST Accounts` (§2.4: only the first token is confirmed). Default none. */
  accountsColumns?: readonly ('status' | 'size')[]
  /** Other `+OK`/`-ERR` texts and table titles (§7.3, §7.4: most wording is unknown). */
  texts?: Partial<SimulatorTexts>
  /** Write each prompt in a TCP segment of its own, after the status line (any split is legal TCP). */
  promptOwnSegment?: boolean
  /** Refuse `GET VERSION` after login (§1.4 confirms it only at `<login>`). */
  refuseVersionAfterLogin?: boolean
  /**
   * Refuse `UPDATE Domain` on a disabled domain (§3.1: unknown). `EDIT Domain`, the documented command
   * for an inactive domain, then opens it (in the simulator it reaches the domain's objects as UPDATE
   * does, marked inferred).
   */
  refuseUpdateOnDisabledDomain?: boolean
  /** After a refused password: `-ERR` and a close instead of a new `<login>` prompt (§1.5, §7.2). */
  closeAfterFailedLogin?: boolean
  /**
   * How SHOW marks explicit and inherited values (§2.4: the bracketed form is S8's docstring, I):
   * `bracketed` (`[explicit, overrides inherited value: …]`, default), `short` (`[explicit]`,
   * `[inherited]`) or `none`.
   */
  showNotes?: 'bracketed' | 'short' | 'none'
  /** How `Mbox size` is printed (§3.2, §7.5: unit unknown). Default `kb`. */
  mboxSize?: 'kb' | 'bytes' | 'kb-with-unit'
  /** Refuse an unconfirmed attribute with `-ERR` (each is an assumption of the connectors). */
  refuse?: {
    /** `SET notes` in `CONFIG ContactInfo` (where panelkit keeps its marker; not in the notes). */
    contactNotes?: boolean
    /** `SET accountClassName` (§3.2: not in the HELP dumps); `INHERIT SETTINGS FROM accountClass` works. */
    accountClassName?: boolean
    /** `SET remoteServer` in `CONFIG MigrationData` (not in the notes); remoteImapHost/remoteImapPort work. */
    remoteServer?: boolean
    /** `SET services ()` written without a space (§7.6: empty-list syntax unknown); `( )` works. */
    emptyServiceList?: boolean
  }
}

export type DomainColumn = 'status' | 'used' | 'total'

/** A named variation, with the connector server options an operator of such a server sets. */
export interface NamedVariation {
  name: string
  variations: SimulatorVariations
  /**
   * What `server.options` must say for the connectors to work against this variation (empty when they
   * work unchanged). Without it, the refused attribute fails with a COMMAND error naming the option.
   */
  serverOptions: Record<string, string>
}

/** Texts a server could print instead of the defaults: every placeholder reworded. */
export const ALTERNATE_TEXTS: Partial<SimulatorTexts> = {
  banner: ["Welcome to AXIGEN's Command Line Interface", 'Version 10.6 - type HELP for the command list'],
  ok: 'done',
  afterUser: 'Send your password',
  authFailed: 'Invalid username or password',
  done: 'leaving context',
  back: 'changes discarded',
  domainsTitle: 'Active domains',
  allDomainsTitle: 'Domains (all)',
  accountsTitle: 'Accounts in this domain',
  classesTitle: 'Account classes',
  showTitle: 'Current settings',
  registryTitle: 'Registry',
  domainColumns: ['domain name', 'used (KB)', 'quota (KB)'],
  allDomainColumns: ['Domain', 'Status'],
  accountColumns: ['Account name'],
  nameColumn: ['Name'],
  enabledWord: 'active',
  disabledWord: 'inactive',
}

/** Every variation the contract suite and the connector behaviour tests run against. */
export const NAMED_VARIATIONS: readonly NamedVariation[] = [
  {
    name: 'columns as wide as their headers (names overflow them)',
    variations: { tableLayout: 'header-width' },
    serverOptions: {},
  },
  { name: 'tab-separated columns', variations: { tableLayout: 'tabs' }, serverOptions: {} },
  {
    name: 'extra status and size columns',
    variations: {
      allDomainsColumns: ['status', 'used'],
      domainsColumns: ['status', 'used', 'total'],
      accountsColumns: ['status', 'size'],
    },
    serverOptions: {},
  },
  {
    name: 'a size where the status was (name used total)',
    variations: { allDomainsColumns: ['used', 'total'], tableLayout: 'header-width' },
    serverOptions: {},
  },
  { name: 'other status texts and table titles', variations: { texts: ALTERNATE_TEXTS }, serverOptions: {} },
  { name: 'the prompt in its own TCP segment', variations: { promptOwnSegment: true }, serverOptions: {} },
  {
    name: 'GET VERSION refused after login',
    variations: { refuseVersionAfterLogin: true },
    serverOptions: {},
  },
  {
    name: 'UPDATE Domain refused on a disabled domain',
    variations: { refuseUpdateOnDisabledDomain: true },
    serverOptions: {},
  },
  { name: 'close after a failed login', variations: { closeAfterFailedLogin: true }, serverOptions: {} },
  { name: 'SHOW without inheritance notes', variations: { showNotes: 'none' }, serverOptions: {} },
  { name: 'SHOW with short inheritance notes', variations: { showNotes: 'short' }, serverOptions: {} },
  { name: 'Mbox size with its unit', variations: { mboxSize: 'kb-with-unit' }, serverOptions: {} },
  {
    name: 'Mbox size in bytes',
    variations: { mboxSize: 'bytes' },
    serverOptions: { mboxSizeUnit: 'bytes' },
  },
  {
    name: 'ContactInfo notes refused',
    variations: { refuse: { contactNotes: true } },
    serverOptions: { markerAttribute: 'department' },
  },
  {
    name: 'SET accountClassName refused',
    variations: { refuse: { accountClassName: true } },
    serverOptions: { classAssignment: 'inherit-settings' },
  },
  {
    name: 'SET remoteServer refused',
    variations: { refuse: { remoteServer: true } },
    serverOptions: { migrationAttributes: 'remoteImapHost' },
  },
  {
    name: 'SET services () refused',
    variations: { refuse: { emptyServiceList: true } },
    serverOptions: { emptyServiceList: '( )' },
  },
]
