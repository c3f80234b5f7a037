import { ProtocolError } from '@panelkit/core'

/**
 * ComputeStacks paginates with `page`/`per_page` (api-pagination over will_paginate) and answers with
 * `Link`, `Total` and `Per-Page` headers. Without `per_page` the server sends 30 items.
 */

export const SERVER_DEFAULT_PER_PAGE = 30

export interface LinkRelations {
  [rel: string]: string
}

/** Parses an RFC 8288 `Link` header into rel → URL. Unparseable parts are skipped. */
export function parseLinkHeader(header: string | undefined | null): LinkRelations {
  const out: LinkRelations = {}
  if (!header) return out
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*((?:;\s*[^;]+)*)$/.exec(part)
    if (!match) continue
    const url = match[1] as string
    for (const param of (match[2] ?? '').split(';')) {
      const rel = /^\s*rel\s*=\s*"?([^"]+)"?\s*$/i.exec(param)
      if (rel?.[1]) for (const name of rel[1].trim().split(/\s+/)) out[name.toLowerCase()] = url
    }
  }
  return out
}

/** The `page` number in a link URL (relative or absolute); undefined when absent. */
export function pageOf(url: string): number | undefined {
  try {
    const value = new URL(url, 'https://placeholder.invalid/').searchParams.get('page')
    if (value === null || !/^\d+$/.test(value)) return undefined
    return Number(value)
  } catch {
    return undefined
  }
}

export interface PageInfo<T> {
  items: T[]
  page: number
  perPage: number
  /** Total items across pages, from the `Total` header. */
  total: number | undefined
  /** The next page to fetch, or undefined on the last page. */
  nextPage: number | undefined
}

function intHeader(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined
  return Number(value.trim())
}

/**
 * Works out the next page from a response. The `Link` header wins; without it the `Total` header
 * decides; without either, a full page means there may be more.
 */
export function pageInfo<T>(
  items: T[],
  page: number,
  requestedPerPage: number,
  headers: Record<string, string | undefined>,
): PageInfo<T> {
  const perPage = intHeader(headers['per-page']) ?? requestedPerPage
  const total = intHeader(headers.total)
  const links = parseLinkHeader(headers.link)
  let nextPage: number | undefined
  if (links.next !== undefined) {
    nextPage = pageOf(links.next)
    if (nextPage === undefined) throw new ProtocolError(`Unusable next link in Link header: ${links.next}`)
  } else if (headers.link !== undefined && headers.link !== '' && Object.keys(links).length > 0) {
    nextPage = undefined
  } else if (total !== undefined) {
    nextPage = page * perPage < total ? page + 1 : undefined
  } else {
    nextPage = items.length >= perPage && items.length > 0 ? page + 1 : undefined
  }
  if (nextPage !== undefined && nextPage <= page) {
    throw new ProtocolError(
      `The server pointed page ${page} back to page ${nextPage}; stopping to avoid a loop`,
    )
  }
  if (nextPage !== undefined && items.length === 0) nextPage = undefined
  return { items, page, perPage, total, nextPage }
}
