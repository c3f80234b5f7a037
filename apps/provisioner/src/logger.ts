import type { Writable } from 'node:stream'
import type { Redactor } from '@panelkit/core'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
/** `json`: one JSON object per line (for machines: journald, Docker, a log shipper); `pretty`: for people. */
export type LogFormat = 'json' | 'pretty'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

/**
 * Structured logs, every value passed through the redactor: JSON lines, or on a terminal one readable
 * line per entry (`12:04:05.123 INFO  job done jobId=3 durationMs=12`). Hand-written rather than
 * pino: the whole entry must go through core's value-based redactor (it masks secret values wherever
 * they appear, not known paths), and the CLI needs no transport thread; it is a few lines.
 */
export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
}

export interface LoggerOptions {
  redactor: Redactor
  stream?: Pick<Writable, 'write'> | null
  level?: LogLevel
  base?: Record<string, unknown>
  format?: LogFormat
}

const LABEL: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR' }
const COLOUR: Record<LogLevel, string> = { debug: '90', info: '36', warn: '33', error: '31' }

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)
  return JSON.stringify(v) ?? String(v)
}

/** One readable line; on a terminal it first clears the line, so it never lands inside a progress bar. */
export function prettyLine(entry: Record<string, unknown>, tty: boolean): string {
  const {
    time,
    level,
    msg,
    app: _app,
    ...fields
  } = entry as Record<string, unknown> & {
    time: string
    level: LogLevel
    msg: string
  }
  const label = tty ? `\x1b[${COLOUR[level]}m${LABEL[level]}\x1b[0m` : LABEL[level]
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(' ')
  return `${tty ? '\r\x1b[2K' : ''}${String(time).slice(11, 23)} ${label} ${msg}${rest ? ` ${rest}` : ''}\n`
}

export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream === undefined ? process.stderr : options.stream
  const min = ORDER[options.level ?? 'info']
  const base = options.base ?? {}
  const log = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}) => {
    if (!stream || ORDER[level] < min) return
    const line = options.redactor.redact({ time: new Date().toISOString(), level, msg, ...base, ...fields })
    stream.write(
      options.format === 'pretty'
        ? prettyLine(line as Record<string, unknown>, (stream as { isTTY?: boolean }).isTTY === true)
        : `${JSON.stringify(line)}\n`,
    )
  }
  return {
    log,
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  }
}

/** A logger that drops everything (tests, quiet CLI runs). */
export function silentLogger(redactor: Redactor): Logger {
  return createLogger({ redactor, stream: null })
}
