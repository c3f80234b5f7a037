import type { Writable } from 'node:stream'
import type { Redactor } from '@panelkit/core'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

/** Structured JSON logs, one object per line, every value passed through the redactor. */
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
}

export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream === undefined ? process.stderr : options.stream
  const min = ORDER[options.level ?? 'info']
  const base = options.base ?? {}
  const log = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}) => {
    if (!stream || ORDER[level] < min) return
    const line = options.redactor.redact({ time: new Date().toISOString(), level, msg, ...base, ...fields })
    stream.write(`${JSON.stringify(line)}\n`)
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
