/**
 * Finds every occurrence of many literal strings in one pass (Aho–Corasick over UTF-16 code units).
 * It replaces one RegExp of all secrets joined with `|`: a RegExp's size is bounded (V8 throws
 * "regular expression too large" with the whole pattern — every secret — in its message), while this
 * automaton holds secrets of any length and count, and its cost per scanned character does not grow
 * with them.
 *
 * A pattern may be marked `wholeWord`: it then counts only where it is not glued to a letter or digit
 * on either side (a short secret such as `xpec` must not turn `Unexpected` into `Une[redacted]ted`).
 */

export interface MatcherPattern {
  text: string
  wholeWord: boolean
}

const NONE = -1

function isWordCode(code: number): boolean {
  if (code < 128) {
    return (
      (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95
    )
  }
  return /[\p{L}\p{N}]/u.test(String.fromCharCode(code))
}

export class SecretMatcher {
  /** Bit set of the code units that start some pattern: everything else is skipped at the root. */
  private readonly starts = new Uint32Array(2048)
  private readonly rootNext = new Map<number, number>()
  // Children as linked lists: most nodes below the first level have exactly one child.
  private readonly firstChild: number[] = [NONE]
  private readonly nextSibling: number[] = [NONE]
  private readonly label: number[] = [0]
  private readonly fail: number[] = [0]
  /** Longest anywhere-pattern ending at this node (through the failure chain); 0 when none. */
  private readonly longest: number[] = [0]
  /** Lengths of whole-word patterns ending at this node (through the failure chain). */
  private readonly wordLengths: (number[] | undefined)[] = [undefined]
  /** The shortest pattern: a string shorter than it cannot hold any. */
  readonly minLength: number
  readonly size: number

  constructor(patterns: Iterable<MatcherPattern>) {
    let min = Number.POSITIVE_INFINITY
    let count = 0
    const ownWord = new Map<number, number[]>()
    for (const p of patterns) {
      if (p.text.length === 0) continue
      count++
      min = Math.min(min, p.text.length)
      let node = 0
      for (let i = 0; i < p.text.length; i++) node = this.childOrAdd(node, p.text.charCodeAt(i))
      if (p.wholeWord) {
        const list = ownWord.get(node) ?? []
        if (!list.includes(p.text.length)) list.push(p.text.length)
        ownWord.set(node, list)
      } else this.longest[node] = Math.max(this.longest[node] ?? 0, p.text.length)
    }
    this.minLength = count === 0 ? Number.POSITIVE_INFINITY : min
    this.size = count
    this.link(ownWord)
  }

  private child(node: number, code: number): number {
    if (node === 0) return this.rootNext.get(code) ?? NONE
    for (let c = this.firstChild[node] as number; c !== NONE; c = this.nextSibling[c] as number) {
      if (this.label[c] === code) return c
    }
    return NONE
  }

  private childOrAdd(node: number, code: number): number {
    const found = this.child(node, code)
    if (found !== NONE) return found
    const id = this.label.length
    this.label.push(code)
    this.firstChild.push(NONE)
    this.fail.push(0)
    this.longest.push(0)
    this.wordLengths.push(undefined)
    if (node === 0) {
      this.rootNext.set(code, id)
      this.nextSibling.push(NONE)
      this.starts[code >>> 5] = (this.starts[code >>> 5] as number) | (1 << (code & 31))
    } else {
      this.nextSibling.push(this.firstChild[node] as number)
      this.firstChild[node] = id
    }
    return id
  }

  /** Failure links in breadth-first order, with each node's outputs merged from its failure node. */
  private link(ownWord: Map<number, number[]>): void {
    const queue: number[] = []
    for (const id of this.rootNext.values()) {
      this.fail[id] = 0
      queue.push(id)
    }
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head] as number
      const f = this.fail[node] as number
      this.longest[node] = Math.max(this.longest[node] as number, this.longest[f] as number)
      const own = ownWord.get(node)
      const inherited = this.wordLengths[f]
      if (own || inherited) this.wordLengths[node] = [...(own ?? []), ...(inherited ?? [])]
      for (let c = this.firstChild[node] as number; c !== NONE; c = this.nextSibling[c] as number) {
        const code = this.label[c] as number
        let s = f
        let target = NONE
        for (;;) {
          target = this.child(s, code)
          if (target !== NONE || s === 0) break
          s = this.fail[s] as number
        }
        this.fail[c] = target === NONE || target === c ? 0 : target
        queue.push(c)
      }
    }
  }

  /**
   * Appends `[start, end)` of every match in `input` to `spans` (unsorted, possibly overlapping).
   * Returns whether anything was found.
   */
  scan(input: string, spans: number[]): boolean {
    if (input.length < this.minLength) return false
    const before = spans.length
    const starts = this.starts
    let state = 0
    for (let i = 0; i < input.length; i++) {
      const code = input.charCodeAt(i)
      if (state === 0) {
        if (((starts[code >>> 5] as number) & (1 << (code & 31))) === 0) continue
        state = this.rootNext.get(code) as number
      } else {
        for (;;) {
          const next = this.child(state, code)
          if (next !== NONE) {
            state = next
            break
          }
          if (state === 0) break
          state = this.fail[state] as number
        }
        if (state === 0) continue
      }
      const long = this.longest[state] as number
      if (long > 0) spans.push(i + 1 - long, i + 1)
      const words = this.wordLengths[state]
      if (words !== undefined) {
        for (const len of words) {
          const start = i + 1 - len
          const end = i + 1
          const gluedLeft =
            start > 0 && isWordCode(input.charCodeAt(start - 1)) && isWordCode(input.charCodeAt(start))
          const gluedRight =
            end < input.length && isWordCode(input.charCodeAt(end)) && isWordCode(input.charCodeAt(end - 1))
          if (!gluedLeft && !gluedRight) spans.push(start, end)
        }
      }
    }
    return spans.length > before
  }
}

/** Replaces the union of `spans` (pairs of `[start, end)`) in `input` with `mask`. */
export function maskSpans(input: string, spans: number[], mask: string): string {
  const pairs: [number, number][] = []
  for (let i = 0; i < spans.length; i += 2) pairs.push([spans[i] as number, spans[i + 1] as number])
  pairs.sort((a, b) => a[0] - b[0] || b[1] - a[1])
  let out = ''
  let cursor = 0
  let open = -1
  let close = -1
  for (const [s, e] of pairs) {
    if (open !== -1 && s < close) {
      if (e > close) close = e
      continue
    }
    if (open !== -1) {
      out += input.slice(cursor, open) + mask
      cursor = close
    }
    open = s
    close = e
  }
  if (open !== -1) {
    out += input.slice(cursor, open) + mask
    cursor = close
  }
  return out + input.slice(cursor)
}
