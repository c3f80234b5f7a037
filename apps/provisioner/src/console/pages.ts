import type { ModuleLogEntry, StepRecord } from '@panelkit/core'
import type { Job } from '../engine/jobs.ts'
import { type Html, html } from './html.ts'

/** Page pieces of the console: server-rendered HTML, escaped by `html`, refreshed in place by htmx. */

export const NAV = [
  ['/console', 'Overview'],
  ['/console/services', 'Services'],
  ['/console/parked', 'Parked jobs'],
  ['/console/drift', 'Drift'],
  ['/console/ledger', 'Ledger'],
  ['/console/log', 'Module log'],
] as const

export interface PageOptions {
  title: string
  path: string
  csrf?: string | undefined
  /** The URL polled for the live region (`#live`), or none for a page that does not refresh. */
  live?: string | undefined
  flash?: { kind: 'ok' | 'error'; text: string } | undefined
}

export function layout(o: PageOptions, body: Html): Html {
  const nav = o.csrf
    ? html`<nav>${NAV.map(
        ([href, label]) =>
          html`<a href="${href}"${o.path === href ? html` aria-current="page"` : ''}>${label}</a>`,
      )}
      <form method="post" action="/console/logout" class="logout">
        <input type="hidden" name="_csrf" value="${o.csrf}"><button type="submit">Log out</button>
      </form></nav>`
    : ''
  const flash = o.flash ? html`<p class="flash ${o.flash.kind}" role="status">${o.flash.text}</p>` : ''
  const main = o.live
    ? html`<div id="live" hx-get="${o.live}" hx-trigger="every 2s" hx-select="#live" hx-target="#live" hx-swap="outerHTML">${body}</div>`
    : html`<div id="live">${body}</div>`
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"historyCacheSize":0}'>
<title>${o.title} · panelkit provisioner</title>
<link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/htmx.min.js" defer></script></head>
<body><header><strong>panelkit provisioner</strong>${nav}</header>
<main><h1>${o.title}</h1>${flash}${main}</main></body></html>`
}

export function table(head: readonly string[], rows: readonly Html[], empty = 'Nothing here.'): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`
  return html`<table><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`
}

export function stateBadge(state: string): Html {
  return html`<span class="state state-${state}">${state}</span>`
}

/** A hidden CSRF field and a one-button form posting to `action`. */
export function actionForm(
  action: string,
  csrf: string,
  label: string,
  fields: Record<string, string> = {},
  danger = false,
): Html {
  return html`<form method="post" action="${action}" class="inline">
<input type="hidden" name="_csrf" value="${csrf}">${Object.entries(fields).map(
    ([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`,
  )}<button type="submit"${danger ? html` class="danger"` : ''}>${label}</button></form>`
}

const OUTCOME_MARK: Record<string, string> = { success: '+', skipped: '=', failed: '!' }

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`
}

/**
 * A job's pipeline run in the shape of PUQ's cron output (seed 003): step number and label, outcome,
 * the state transition and the duration in brackets; a failed step shows its reason.
 */
export function timeline(job: Job): Html {
  const steps: StepRecord[] = job.steps
  const head = html`<p class="run-head">--- ${job.operation}: service=${job.serviceId} job=${job.id} status=${job.status} attempts=${job.attempts} ---</p>`
  if (steps.length === 0)
    return html`<div class="timeline">${head}<p class="empty">No pipeline steps recorded (a single call, or not run yet).</p></div>`
  const total = steps.reduce((n, s) => n + s.durationMs, 0)
  return html`<div class="timeline">${head}<ol class="steps">${steps.map(
    (s) =>
      html`<li class="step step-${s.outcome}"><span class="mark">[${OUTCOME_MARK[s.outcome] ?? '?'}]</span><span class="idx">${s.index}.</span><span class="label">${s.label}${s.outcome === 'skipped' ? ' (skip — no change)' : ''}</span><span class="outcome">${s.outcome === 'failed' ? (s.reason ?? 'failed') : 'success'}</span><span class="transition">(${s.from} -&gt; ${s.to})</span><span class="duration">[${seconds(s.durationMs)}]</span></li>`,
  )}</ol><p class="run-foot">--- ${job.status === 'done' ? 'complete' : job.status}: ${steps.length} steps, ${seconds(total)} ---</p></div>`
}

export function logRows(entries: readonly (ModuleLogEntry & { seq: number })[]): Html[] {
  return entries.map(
    (e) =>
      html`<tr class="outcome-${e.outcome}"><td>${e.time.replace('T', ' ').slice(0, 19)}</td><td>${e.serviceId ?? '-'}</td><td>${e.connector}</td><td>${e.operation ?? '-'}</td><td><code>${e.action}</code></td><td>${e.outcome}</td><td>${e.durationMs.toFixed(0)} ms</td><td>${e.error ? `${e.error.code}: ${e.error.message}` : ''}</td></tr>`,
  )
}
