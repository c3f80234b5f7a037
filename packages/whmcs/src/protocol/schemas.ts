import { z } from 'zod'
import {
  MoneySchema,
  OptionalIdSchema,
  TextSchema,
  WhmcsBoolSchema,
  WhmcsDateSchema,
  WhmcsDateTimeSchema,
  WhmcsIdSchema,
  WhmcsIntSchema,
  whmcsList,
} from './values.ts'

/** Response schemas of the typed actions: WHMCS's field names, normalised types. */

export const SERVICE_STATUSES = [
  'Pending',
  'Active',
  'Completed',
  'Suspended',
  'Terminated',
  'Cancelled',
  'Fraud',
] as const
export type ServiceStatus = (typeof SERVICE_STATUSES)[number]

/** The envelope every answer has. */
export const EnvelopeSchema = z.looseObject({
  result: z.string().optional(),
  status: z.string().optional(),
  message: TextSchema.optional(),
})

const PageFields = {
  totalresults: WhmcsIntSchema,
  startnumber: WhmcsIntSchema,
  numreturned: WhmcsIntSchema,
}

// ---- clients --------------------------------------------------------------------------------------

export const ClientSummarySchema = z.object({
  id: WhmcsIdSchema,
  firstname: TextSchema,
  lastname: TextSchema,
  companyname: TextSchema,
  email: TextSchema,
  datecreated: WhmcsDateSchema,
  groupid: OptionalIdSchema,
  status: TextSchema,
})
export type ClientSummary = z.output<typeof ClientSummarySchema>

export const GetClientsSchema = z.object({
  ...PageFields,
  clients: whmcsList('client', ClientSummarySchema),
})
export type GetClientsResponse = z.output<typeof GetClientsSchema>

export const ClientUserSchema = z.object({
  id: WhmcsIdSchema,
  name: TextSchema,
  email: TextSchema,
  is_owner: WhmcsBoolSchema,
})

export const ClientDetailsSchema = z.looseObject({
  id: WhmcsIdSchema,
  owner_user_id: OptionalIdSchema,
  firstname: TextSchema,
  lastname: TextSchema,
  fullname: TextSchema.optional(),
  companyname: TextSchema,
  email: TextSchema,
  address1: TextSchema.optional(),
  address2: TextSchema.optional(),
  city: TextSchema.optional(),
  state: TextSchema.optional(),
  postcode: TextSchema.optional(),
  countrycode: TextSchema.optional(),
  phonenumber: TextSchema.optional(),
  phonenumberformatted: TextSchema.optional(),
  telephoneNumber: TextSchema.optional(),
  status: TextSchema,
  credit: MoneySchema,
  currency: OptionalIdSchema,
  currency_code: TextSchema.optional(),
  groupid: OptionalIdSchema,
  language: TextSchema.optional(),
  customfields: z
    .preprocess(
      (v) => (v === '' || v === undefined || v === null ? [] : v),
      z.array(z.object({ id: WhmcsIdSchema, value: TextSchema })),
    )
    .default([]),
  users: whmcsList('user', ClientUserSchema),
})
export type WhmcsClientDetails = z.output<typeof ClientDetailsSchema>

export const GetClientsDetailsSchema = z.looseObject({ client: ClientDetailsSchema })
export type GetClientsDetailsResponse = z.output<typeof GetClientsDetailsSchema>

// ---- services -------------------------------------------------------------------------------------

export const ServiceCustomFieldSchema = z.object({
  id: WhmcsIdSchema,
  name: TextSchema,
  value: TextSchema,
})
export const ServiceConfigOptionSchema = z.object({
  id: WhmcsIdSchema,
  option: TextSchema,
  type: TextSchema,
  value: TextSchema,
})

/** One service (`tblhosting` row) as GetClientsProducts returns it. */
export const ServiceSchema = z.object({
  id: WhmcsIdSchema,
  clientid: WhmcsIdSchema,
  orderid: OptionalIdSchema,
  pid: WhmcsIdSchema,
  regdate: WhmcsDateSchema,
  name: TextSchema,
  groupname: TextSchema,
  domain: TextSchema,
  dedicatedip: TextSchema,
  serverid: OptionalIdSchema,
  servername: TextSchema,
  serverip: TextSchema,
  serverhostname: TextSchema,
  suspensionreason: TextSchema,
  firstpaymentamount: MoneySchema,
  recurringamount: MoneySchema,
  paymentmethod: TextSchema,
  billingcycle: TextSchema,
  nextduedate: WhmcsDateSchema,
  status: TextSchema,
  username: TextSchema,
  /** The decrypted service password. Masked in every log this package writes. */
  password: TextSchema,
  overidesuspenduntil: WhmcsDateSchema,
  assignedips: TextSchema,
  notes: TextSchema,
  lastupdate: WhmcsDateTimeSchema,
  customfields: whmcsList('customfield', ServiceCustomFieldSchema),
  configoptions: whmcsList('configoption', ServiceConfigOptionSchema),
})
export type WhmcsService = z.output<typeof ServiceSchema>

/**
 * The fields reverse sync reads, for passes over many services: less to validate and to keep.
 */
export const SyncServiceSchema = ServiceSchema.pick({
  id: true,
  clientid: true,
  pid: true,
  regdate: true,
  domain: true,
  billingcycle: true,
  nextduedate: true,
  status: true,
  username: true,
  password: true,
  suspensionreason: true,
  customfields: true,
  configoptions: true,
})
export type WhmcsSyncService = z.output<typeof SyncServiceSchema>

export const GetClientsProductsSyncSchema = z.object({
  ...PageFields,
  products: whmcsList('product', SyncServiceSchema),
})

/**
 * A page of services whose rows are left unvalidated, for callers that validate each row with
 * `SyncServiceSchema` themselves so that one malformed service does not cost the whole page.
 */
export const GetClientsProductsRowsSchema = z.object({
  ...PageFields,
  products: whmcsList('product', z.unknown()),
})

export const GetClientsProductsSchema = z.object({
  ...PageFields,
  products: whmcsList('product', ServiceSchema),
})
export type GetClientsProductsResponse = z.output<typeof GetClientsProductsSchema>

// ---- products -------------------------------------------------------------------------------------

export const ProductConfigOptionSchema = z.object({
  id: WhmcsIdSchema,
  name: TextSchema,
  type: TextSchema,
  options: whmcsList('option', z.looseObject({ id: WhmcsIdSchema, name: TextSchema })),
})

export const ProductSchema = z.looseObject({
  pid: WhmcsIdSchema,
  gid: OptionalIdSchema,
  type: TextSchema,
  name: TextSchema,
  description: TextSchema,
  module: TextSchema,
  paytype: TextSchema,
  pricing: z.record(z.string(), z.record(z.string(), z.unknown())).catch({}),
  customfields: whmcsList(
    'customfield',
    z.object({ id: WhmcsIdSchema, name: TextSchema, description: TextSchema, required: TextSchema }),
  ),
  configoptions: whmcsList('configoption', ProductConfigOptionSchema),
})
export type WhmcsProduct = z.output<typeof ProductSchema>

export const GetProductsSchema = z.object({
  totalresults: WhmcsIntSchema,
  products: whmcsList('product', ProductSchema),
})
export type GetProductsResponse = z.output<typeof GetProductsSchema>

// ---- invoices, orders, credits, users -------------------------------------------------------------

export const InvoiceSchema = z.looseObject({
  id: WhmcsIdSchema,
  userid: WhmcsIdSchema,
  invoicenum: TextSchema,
  date: WhmcsDateSchema,
  duedate: WhmcsDateSchema,
  datepaid: WhmcsDateTimeSchema,
  subtotal: MoneySchema,
  credit: MoneySchema,
  tax: MoneySchema,
  total: MoneySchema,
  status: TextSchema,
  paymentmethod: TextSchema,
  currencycode: TextSchema.optional(),
})
export type WhmcsInvoice = z.output<typeof InvoiceSchema>
export const GetInvoicesSchema = z.object({ ...PageFields, invoices: whmcsList('invoice', InvoiceSchema) })
export type GetInvoicesResponse = z.output<typeof GetInvoicesSchema>

export const OrderLineItemSchema = z.looseObject({
  type: TextSchema,
  relid: OptionalIdSchema,
  producttype: TextSchema,
  product: TextSchema,
  domain: TextSchema,
  billingcycle: TextSchema,
  amount: MoneySchema,
  status: TextSchema,
})
export const OrderSchema = z.looseObject({
  id: WhmcsIdSchema,
  ordernum: TextSchema,
  userid: WhmcsIdSchema,
  date: WhmcsDateTimeSchema,
  amount: MoneySchema,
  paymentmethod: TextSchema,
  invoiceid: OptionalIdSchema,
  status: TextSchema,
  paymentstatus: TextSchema,
  lineitems: whmcsList('lineitem', OrderLineItemSchema),
})
export type WhmcsOrder = z.output<typeof OrderSchema>
export const GetOrdersSchema = z.object({ ...PageFields, orders: whmcsList('order', OrderSchema) })
export type GetOrdersResponse = z.output<typeof GetOrdersSchema>

export const CreditSchema = z.looseObject({
  id: WhmcsIdSchema,
  date: WhmcsDateSchema,
  description: TextSchema,
  amount: MoneySchema,
  relid: OptionalIdSchema,
})
export const GetCreditsSchema = z.object({
  totalresults: WhmcsIntSchema,
  clientid: WhmcsIdSchema,
  credits: whmcsList('credit', CreditSchema),
})
export type GetCreditsResponse = z.output<typeof GetCreditsSchema>

/** GetUsers (WHMCS 8+ logins). Each user lists the client accounts it can reach. */
export const UserSchema = z.looseObject({
  id: WhmcsIdSchema,
  firstname: TextSchema,
  lastname: TextSchema,
  email: TextSchema,
  clients: whmcsList('client', z.looseObject({ id: WhmcsIdSchema, isOwner: WhmcsBoolSchema.optional() })),
})
export type WhmcsUser = z.output<typeof UserSchema>
export const GetUsersSchema = z.object({ ...PageFields, users: whmcsList('user', UserSchema) })
export type GetUsersResponse = z.output<typeof GetUsersSchema>

// ---- writes and system ----------------------------------------------------------------------------

export const AddBillableItemSchema = z.looseObject({ billableid: WhmcsIdSchema })
export const UpdateClientProductSchema = z.looseObject({ serviceid: WhmcsIdSchema })
export const AddClientSchema = z.looseObject({
  clientid: WhmcsIdSchema,
  owner_id: OptionalIdSchema.optional(),
})
export const UpdateClientSchema = z.looseObject({ clientid: WhmcsIdSchema })
export const AddCreditSchema = z.looseObject({ newbalance: MoneySchema })
export const AddOrderSchema = z.looseObject({
  orderid: WhmcsIdSchema,
  invoiceid: OptionalIdSchema,
  serviceids: z.union([z.string(), z.number(), z.null(), z.undefined()]).transform((v) =>
    v === null || v === undefined || v === ''
      ? []
      : String(v)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
  ),
})
export type AddOrderResponse = z.output<typeof AddOrderSchema>
export const ResultOnlySchema = z.looseObject({})
export const WhmcsDetailsSchema = z.looseObject({
  whmcs: z.looseObject({ version: TextSchema, canonicalversion: TextSchema.optional() }),
})
export const GetHealthStatusSchema = z.looseObject({})
