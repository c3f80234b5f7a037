/**
 * A tagged template for HTML that escapes every interpolated value unless it is already `Html`
 * (produced by this template or `raw`). Arrays are joined. Pages are built from it, so a value from
 * the store or a panel can never become markup.
 */
export class Html {
  readonly value: string
  constructor(value: string) {
    this.value = value
  }
  toString(): string {
    return this.value
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string)
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[]

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return ''
  if (v instanceof Html) return v.value
  if (Array.isArray(v)) return v.map(render).join('')
  return escapeHtml(String(v))
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] as string
  for (let i = 0; i < values.length; i++) out += render(values[i] as Value) + (strings[i + 1] as string)
  return new Html(out)
}

/** Markup from a trusted constant (never from data). */
export function raw(markup: string): Html {
  return new Html(markup)
}
