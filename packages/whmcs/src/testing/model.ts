/** The simulator's state: plain records, indexed so that 100 000 services page in constant time. */

export type ClientStatus = 'Active' | 'Inactive' | 'Closed'
export type SimServiceStatus =
  | 'Pending'
  | 'Active'
  | 'Completed'
  | 'Suspended'
  | 'Terminated'
  | 'Cancelled'
  | 'Fraud'

export interface SimClient {
  id: number
  firstname: string
  lastname: string
  companyname: string
  email: string
  address1: string
  address2: string
  city: string
  state: string
  postcode: string
  country: string
  phonenumber: string
  status: ClientStatus
  datecreated: string
  groupid: number
  /** Credit balance in cents (exact). */
  creditCents: number
  currency: number
  ownerUserId: number
  customFields: Record<string, string>
}

export interface SimUser {
  id: number
  firstname: string
  lastname: string
  email: string
  datecreated: string
  clients: { id: number; isOwner: boolean }[]
}

export interface SimCustomFieldDef {
  id: number
  name: string
  type: 'text' | 'password' | 'dropdown' | 'tickbox'
  description: string
  required: boolean
  showOnOrder: boolean
}

export interface SimConfigOptionDef {
  id: number
  name: string
  type: 'dropdown' | 'radio' | 'yesno' | 'quantity'
  options: SimConfigSubOption[]
}

/** The price columns WHMCS keeps per product and per configurable sub-option (`tblpricing`). */
export const PRICE_COLUMNS = [
  'msetupfee',
  'qsetupfee',
  'ssetupfee',
  'asetupfee',
  'bsetupfee',
  'tsetupfee',
  'monthly',
  'quarterly',
  'semiannually',
  'annually',
  'biennially',
  'triennially',
] as const
export type PriceColumn = (typeof PRICE_COLUMNS)[number]

export interface SimConfigSubOption {
  id: number
  name: string
  /** Price per column in cents; a column left out is `0.00`. */
  prices?: Partial<Record<PriceColumn, number>>
}

export interface SimProduct {
  id: number
  gid: number
  groupname: string
  name: string
  type: 'hostingaccount' | 'reselleraccount' | 'server' | 'other'
  module: string
  paytype: 'free' | 'onetime' | 'recurring'
  /** When WHMCS runs the module create: on order, on first payment, on accept, or never. */
  autoSetup: 'order' | 'payment' | 'on' | ''
  monthlyCents: number
  /**
   * Price per column in cents, `-1` for a cycle that is switched off (`-1.00`, as WHMCS shows it).
   * Columns left out: setup fees `0.00`; for a recurring product `monthly` from `monthlyCents` and
   * `annually` twelve times it, the other cycles off; for a one-time product `monthly` only.
   */
  prices?: Partial<Record<PriceColumn, number>>
  customFields: SimCustomFieldDef[]
  configOptions: SimConfigOptionDef[]
}

export interface SimService {
  id: number
  clientId: number
  orderId: number
  pid: number
  regdate: string
  domain: string
  serverId: number
  status: SimServiceStatus
  billingcycle: string
  nextduedate: string
  firstPaymentCents: number
  recurringCents: number
  paymentmethod: string
  username: string
  password: string
  dedicatedip: string
  assignedips: string
  notes: string
  suspendreason: string
  overidesuspenduntil: string
  lastupdate: string
  /** Custom field id → value. */
  customFields: Record<number, string>
  /** Config option id → sub-option id (or quantity for quantity/yesno options). */
  configChoices: Record<number, number>
}

export interface SimOrder {
  id: number
  ordernum: string
  userid: number
  date: string
  amountCents: number
  paymentmethod: string
  invoiceId: number
  status: 'Pending' | 'Active' | 'Fraud' | 'Cancelled'
  serviceIds: number[]
  ipaddress: string
}

export interface SimInvoiceItem {
  type: 'Hosting' | 'Item' | 'Upgrade'
  relid: number
  description: string
  amountCents: number
}

export interface SimInvoice {
  id: number
  userid: number
  date: string
  duedate: string
  datepaid: string
  status: 'Unpaid' | 'Paid' | 'Cancelled' | 'Refunded' | 'Draft'
  paymentmethod: string
  items: SimInvoiceItem[]
}

export interface SimBillableItem {
  id: number
  clientid: number
  description: string
  amount: string
  quantity: string
  unit: string
  invoiceaction: string
  duedate: string
  recur: number
  recurcycle: string
  recurfor: number
}

export interface SimCredit {
  id: number
  clientid: number
  date: string
  description: string
  amountCents: number
}

export interface SimServer {
  id: number
  name: string
  ip: string
  hostname: string
}

export function cents(amount: string): number {
  const m = /^(-?)(\d+)(?:\.(\d{1,2})\d*)?$/.exec(amount.trim())
  if (!m) return Number.NaN
  const value = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'))
  return m[1] === '-' ? -value : value
}

export function money(c: number): string {
  const sign = c < 0 ? '-' : ''
  const a = Math.abs(c)
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`
}

export function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10)
}

export function addCycle(date: string, cycle: string): string {
  const months: Record<string, number> = {
    Monthly: 1,
    Quarterly: 3,
    'Semi-Annually': 6,
    Annually: 12,
    Biennially: 24,
    Triennially: 36,
  }
  const n = months[cycle]
  if (n === undefined || date === '0000-00-00') return date
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCMonth(d.getUTCMonth() + n)
  return isoDate(d)
}
