/**
 * The XML the controller answers when asked for it (`respond_to :json, :xml`, CTL
 * `app/controllers/api/application_controller.rb`), in ActiveSupport's `Hash#to_xml` / `Array#to_xml`
 * form: keys dasherized, integers and booleans typed, nil as `nil="true"`, arrays as `type="array"` with
 * singular child names. `render xml: hash` (errors, version, SSO) is rooted at `<hash>`; RABL views are
 * rooted at their object or collection name (RABL 0.16 `default_xml_options` dasherize, with types).
 * Times and decimals are rendered as the text the simulator holds (Rails would add
 * `type="dateTime"`/`type="decimal"`; the simulator keeps them as strings).
 */

const escapeText = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

const dasherize = (key: string) => key.replace(/_/g, '-')

/** ActiveSupport's singularize for the plural names the admin API uses. */
function singular(name: string): string {
  if (name.endsWith('ies')) return `${name.slice(0, -3)}y`
  if (name.endsWith('sses')) return name.slice(0, -2)
  if (name.endsWith('s')) return name.slice(0, -1)
  return name
}

function element(name: string, value: unknown, indent: string): string {
  const tag = dasherize(name)
  if (value === null || value === undefined) return `${indent}<${tag} nil="true"/>\n`
  if (Array.isArray(value)) {
    if (value.length === 0) return `${indent}<${tag} type="array"/>\n`
    const child = singular(name)
    return `${indent}<${tag} type="array">\n${value.map((v) => element(child, v, `${indent}  `)).join('')}${indent}</${tag}>\n`
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
    return `${indent}<${tag}>\n${entries.map(([k, v]) => element(k, v, `${indent}  `)).join('')}${indent}</${tag}>\n`
  }
  if (typeof value === 'boolean') return `${indent}<${tag} type="boolean">${value}</${tag}>\n`
  if (typeof value === 'number')
    return Number.isInteger(value)
      ? `${indent}<${tag} type="integer">${value}</${tag}>\n`
      : `${indent}<${tag} type="float">${value}</${tag}>\n`
  return `${indent}<${tag}>${escapeText(String(value))}</${tag}>\n`
}

const PROLOGUE = '<?xml version="1.0" encoding="UTF-8"?>\n'

/** `render xml: {...}`: a plain hash, rooted at `<hash>`. */
export function hashToXml(body: Record<string, unknown>): string {
  return PROLOGUE + element('hash', body, '')
}

/** A RABL view: `{ user: {...} }` → `<user>…</user>`, `{ users: [...] }` → `<users type="array">…`. */
export function viewToXml(body: Record<string, unknown>): string {
  const entries = Object.entries(body)
  if (entries.length !== 1) return hashToXml(body)
  const [root, value] = entries[0] as [string, unknown]
  return PROLOGUE + element(root, value, '')
}
