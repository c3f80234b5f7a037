/**
 * The server side of the command grammar: splits one command line into tokens following the bash-like
 * rules the Axigen documentation gives — bare words with backslash escapes, single-quoted literals,
 * double-quoted strings with `\\` and `\"` escapes, and parenthesised lists. The simulator uses it,
 * and the property test proves that every encoded value comes back exactly.
 */

export type ParsedToken = { kind: 'word'; value: string; quoted: boolean } | { kind: 'list'; items: string[] }

export class CommandSyntaxError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CommandSyntaxError'
  }
}

export function tokenize(line: string): ParsedToken[] {
  const tokens: ParsedToken[] = []
  let i = 0
  const n = line.length
  while (i < n) {
    const c = line[i]
    if (c === ' ' || c === '\t') {
      i++
      continue
    }
    if (c === '(') {
      const close = line.indexOf(')', i + 1)
      if (close === -1) throw new CommandSyntaxError('unterminated list')
      const items = line
        .slice(i + 1, close)
        .split(/[ \t]+/)
        .filter((s) => s.length > 0)
      tokens.push({ kind: 'list', items })
      i = close + 1
      continue
    }
    let out = ''
    let quoted = false
    // One word may join several quoted and bare parts, as in bash (`a"b c"d` is one word).
    while (i < n && line[i] !== ' ' && line[i] !== '\t') {
      const ch = line[i] as string
      if (ch === '"') {
        quoted = true
        i++
        let closed = false
        while (i < n) {
          const d = line[i] as string
          if (d === '\\' && i + 1 < n && (line[i + 1] === '"' || line[i + 1] === '\\')) {
            out += line[i + 1]
            i += 2
          } else if (d === '"') {
            i++
            closed = true
            break
          } else {
            out += d
            i++
          }
        }
        if (!closed) throw new CommandSyntaxError('unterminated double quote')
      } else if (ch === "'") {
        quoted = true
        const close = line.indexOf("'", i + 1)
        if (close === -1) throw new CommandSyntaxError('unterminated single quote')
        out += line.slice(i + 1, close)
        i = close + 1
      } else if (ch === '\\') {
        if (i + 1 >= n) throw new CommandSyntaxError('dangling backslash')
        out += line[i + 1]
        i += 2
      } else {
        out += ch
        i++
      }
    }
    tokens.push({ kind: 'word', value: out, quoted })
  }
  return tokens
}

/** One parsed command: the leading keywords (upper-cased) are for dispatch, the rest are arguments. */
export interface ParsedCommand {
  tokens: ParsedToken[]
  /** Upper-cased bare words, for matching verbs: `['UPDATE', 'DOMAIN', 'NAME']`. */
  words: string[]
  /** The line as received. */
  raw: string
}

export function parseCommand(line: string): ParsedCommand {
  const tokens = tokenize(line)
  const words = tokens.map((t) => (t.kind === 'word' && !t.quoted ? t.value.toUpperCase() : ''))
  return { tokens, words, raw: line }
}

/**
 * Reads `keyword value` pairs after `skip` leading tokens. Keywords match case-insensitively; a bare
 * first value without keyword is stored under `positional` (the optional `name` keyword of the CLI).
 */
export function keywordArgs(
  tokens: readonly ParsedToken[],
  skip: number,
  known: readonly string[],
  positional?: string,
  flagNames: readonly string[] = [],
): { args: Map<string, ParsedToken>; flags: Set<string> } | CommandSyntaxError {
  const args = new Map<string, ParsedToken>()
  const flags = new Set<string>()
  const lower = new Map(known.map((k) => [k.toLowerCase(), k]))
  const flagLower = new Map(flagNames.map((k) => [k.toLowerCase(), k]))
  let i = skip
  while (i < tokens.length) {
    const t = tokens[i] as ParsedToken
    const bare = t.kind === 'word' && !t.quoted ? t.value.toLowerCase() : undefined
    const flag = bare === undefined ? undefined : flagLower.get(bare)
    if (flag !== undefined) {
      flags.add(flag)
      i++
      continue
    }
    const key = bare === undefined ? undefined : lower.get(bare)
    if (key !== undefined) {
      const next = tokens[i + 1]
      if (next === undefined) return new CommandSyntaxError(`${key} needs a value`)
      args.set(key, next)
      i += 2
      continue
    }
    if (positional !== undefined && i === skip && !args.has(positional)) {
      args.set(positional, t)
      i++
      continue
    }
    return new CommandSyntaxError(
      `unexpected ${t.kind === 'word' ? JSON.stringify(t.value) : 'list'} (expected one of ${[...known, ...flagNames].join(', ')})`,
    )
  }
  return { args, flags }
}
