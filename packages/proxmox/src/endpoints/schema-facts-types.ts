/** The shape of the generated schema facts (a subset of the official API schema's own vocabulary). */

export interface SchemaProperty {
  type?: string
  optional?: number | boolean
  default?: unknown
  default_key?: number
  alias?: string
  keyAlias?: string
  enum?: string[]
  minimum?: number | string
  maximum?: number | string
  minLength?: number | string
  maxLength?: number | string
  format?: string | Record<string, SchemaProperty>
  pattern?: string
  requires?: string
  additionalProperties?: number | boolean | SchemaProperty
  items?: SchemaProperty
  properties?: Record<string, SchemaProperty>
}

export interface SchemaMethod {
  method: string
  parameters?: { additionalProperties?: number; properties?: Record<string, SchemaProperty> }
  returns?: SchemaProperty
}

/** `METHOD /path/{param}` → method facts. */
export type SchemaFacts = Record<string, SchemaMethod>
