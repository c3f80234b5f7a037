import { inspect } from 'node:util'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createCallRecorder } from '../../src/calls.ts'
import { ConnectionError, HttpError, NotFoundError, ValidationError } from '../../src/errors.ts'
import { MemoryLogSink } from '../../src/module-log.ts'
import { createRedactor, isRedactedFor, REDACTED, SHORT_SECRET_LENGTH } from '../../src/redaction.ts'
import { maskSpans, SecretMatcher } from '../../src/secret-matcher.ts'

/** Text the redactor itself adds (error fields, the mask): a secret equal to part of it proves nothing. */
const STRUCTURE = `name message cause Error ${REDACTED}`

/** Characters a RegExp gives meaning to, and the `/` an escaped pattern is printed with. */
const METACHARACTERS = [...'/\\^$.*+?()[]{}|-ab']

function strings(value: unknown, out: string[] = [], seen = new Set<unknown>()): string[] {
  if (typeof value === 'string') out.push(value)
  else if (value !== null && typeof value === 'object' && !seen.has(value)) {
    seen.add(value)
    for (const [k, v] of Object.entries(value)) {
      out.push(k)
      strings(v, out, seen)
    }
  }
  return out
}

describe('redactor', () => {
  it('masks secret keys at any depth, whatever the spelling of the key', () => {
    const r = createRedactor()
    const out = r.redact({
      user: 'bob',
      password: 'hunter2',
      nested: { api_key: 'k-123', 'X-Api-Key': 'k-456', list: [{ serverPassword: 'sp', token: 't' }] },
    })
    expect(out).toEqual({
      user: 'bob',
      password: REDACTED,
      nested: {
        api_key: REDACTED,
        'X-Api-Key': REDACTED,
        list: [{ serverPassword: REDACTED, token: REDACTED }],
      },
    })
  })

  it('masks declared values inside free text, URLs, query strings, form bodies and headers', () => {
    const r = createRedactor({ values: ['s3cr3t!'] })
    expect(r.redactString('login failed for s3cr3t! today')).toBe(`login failed for ${REDACTED} today`)
    expect(r.redactString('https://h/api?user=a&pw=s3cr3t%21')).not.toContain('s3cr3t')
    expect(r.redactString('user=a&password=other-thing&x=1')).toBe(`user=a&password=${REDACTED}&x=1`)
    expect(r.redactString('Authorization: Basic dXNlcjpwYXNz')).toBe(`Authorization: ${REDACTED}`)
    expect(r.redactString('{"secret":"abc","ok":1}')).toBe(`{"secret":"${REDACTED}","ok":1}`)
    expect(r.redactString('customfields[password]=zzz')).toBe(`customfields[password]=${REDACTED}`)
  })

  it('masks URL objects, URLSearchParams, errors with causes, maps and buffers', () => {
    const r = createRedactor({ values: ['tok-999'] })
    const url = new URL('https://user:pw@example.com/x?ticket=abc&q=tok-999')
    const masked = r.redact({ url }) as unknown as { url: string }
    expect(masked.url).not.toContain('pw@')
    expect(masked.url).not.toContain('abc')
    expect(masked.url).not.toContain('tok-999')
    const err = new Error('bad tok-999', { cause: new Error('inner tok-999') })
    const e = r.redact(err) as unknown as { message: string; cause: { message: string } }
    expect(e.message).toBe(`bad ${REDACTED}`)
    expect(e.cause.message).toBe(`inner ${REDACTED}`)
    expect(JSON.stringify(r.redact(new Map([['password', 'x']])))).toContain(REDACTED)
    expect(r.redact(Buffer.from('body tok-999'))).toBe(`body ${REDACTED}`)
  })

  it('handles cycles', () => {
    const r = createRedactor()
    const a: Record<string, unknown> = { password: 'p' }
    a.self = a
    const out = r.redact(a) as Record<string, unknown>
    expect(out.password).toBe(REDACTED)
    expect(out.self).toBe(out)
  })

  it('child redactors inherit and do not leak back to the parent', () => {
    const parent = createRedactor({ values: ['parent-secret'] })
    const child = parent.child({ values: ['child-secret'] })
    expect(child.redactString('parent-secret child-secret')).toBe(`${REDACTED} ${REDACTED}`)
    expect(parent.redactString('child-secret')).toBe('child-secret')
  })

  it('property: a declared secret never survives, whatever structure holds it', () => {
    const secretArb = fc
      .oneof(
        fc.string({ minLength: SHORT_SECRET_LENGTH, maxLength: 24 }),
        fc.string({ minLength: SHORT_SECRET_LENGTH, maxLength: 12, unit: 'grapheme' }),
        fc.string({
          minLength: SHORT_SECRET_LENGTH,
          maxLength: 24,
          unit: fc.constantFrom(...METACHARACTERS),
        }),
      )
      .filter((s) => !STRUCTURE.includes(s) && s.trim().length > 0)
    // Builds arbitrary nested structures where the secret may appear in keys, values, arrays, maps,
    // errors, URL-encoded or JSON-escaped text, surrounded by arbitrary text.
    const holder = (secret: string) =>
      fc.letrec((tie) => ({
        leaf: fc.oneof(
          fc.tuple(fc.string(), fc.string()).map(([a, b]) => `${a}${secret}${b}`),
          fc.tuple(fc.string(), fc.string()).map(([a, b]) => `${a}${encodeURIComponent(secret)}${b}`),
          fc.string().map((a) => `${a}${JSON.stringify({ v: secret })}`),
          fc.string(),
          fc.integer(),
          fc.constant(null),
        ),
        node: fc.oneof(
          { depthSize: 'small' },
          tie('leaf'),
          fc.array(tie('node'), { maxLength: 4 }),
          fc.dictionary(fc.oneof(fc.string(), fc.constant(secret)), tie('node'), { maxKeys: 4 }),
          tie('leaf').map((v) => {
            const error = new Error(String(v))
            // A stack holds file paths that may contain any short string by coincidence.
            delete error.stack
            return error
          }),
          fc.array(fc.tuple(fc.string(), tie('node')), { maxLength: 3 }).map((entries) => new Map(entries)),
        ),
      })).node
    fc.assert(
      fc.property(
        secretArb.chain((secret) => fc.tuple(fc.constant(secret), holder(secret))),
        ([secret, value]) => {
          const r = createRedactor({ values: [secret] })
          // Every key and string value of the redacted copy, checked as is and as the JSON text a log
          // line would carry.
          for (const text of strings(r.redact(value))) {
            expect(text.includes(secret)).toBe(false)
            expect(JSON.stringify(text).includes(JSON.stringify(secret).slice(1, -1))).toBe(false)
          }
        },
      ),
      { numRuns: 400 },
    )
  })
})

describe('a redactor printed by a user', () => {
  it('never prints the secret values it holds (inspect, JSON, template string)', () => {
    const r = createRedactor({ values: ['hunter2-Very-Secret'] })
    r.addValue('tkt-PVE:root@pam:ABCDEF')
    const recorder = createCallRecorder({ connector: 'probe', redactor: r })
    for (const printed of [
      inspect(r, { depth: Number.POSITIVE_INFINITY, showHidden: true }),
      inspect(recorder, { depth: Number.POSITIVE_INFINITY }),
      inspect({ client: { recorder } }, { depth: Number.POSITIVE_INFINITY }),
      JSON.stringify(r),
      JSON.stringify({ recorder }),
      `${String(r)}`,
    ]) {
      expect(printed).not.toContain('hunter2')
      expect(printed).not.toContain('PVE:root')
    }
    expect(inspect(r)).toMatch(/^Redactor \{ \d+ secret keys, \d+ secret values \}$/)
    // still works after being printed
    expect(r.redactString('x hunter2-Very-Secret y')).toBe(`x ${REDACTED} y`)
  })
})

describe('errors thrown through a call recorder', () => {
  for (const withSink of [false, true]) {
    it(`mask declared secrets and key=value secrets in message, body, details, issues and causes (sink: ${withSink})`, async () => {
      const recorder = createCallRecorder({
        connector: 'probe',
        ...(withSink ? { sink: new MemoryLogSink() } : {}),
      })
      recorder.redactor.addValue('API-SECRET-42')
      const root = Object.assign(new Error('socket said API-SECRET-42'), { code: 'ECONNRESET' })
      const middle = new ConnectionError('proxy echoed Authorization: Basic dXNlcjpodW50ZXI=', {
        cause: root,
      })
      const thrown = new HttpError('HTTP 500: identifier=abc&secret=API-SECRET-42', {
        status: 500,
        body: '<pre>identifier=abc&password=hunter2&secret=API-SECRET-42</pre>',
        details: { echoed: { apiSecret: 'plain', note: 'key API-SECRET-42' } },
        cause: middle,
      })
      const caught = await recorder
        .call({ system: 'x', action: 'POST /api', access: 'read' }, async () => {
          throw thrown
        })
        .catch((e: unknown) => e)
      // Same instances (callers check kind, code and cause identity), only their text is masked.
      expect(caught).toBe(thrown)
      expect(thrown.cause).toBe(middle)
      expect(middle.cause).toBe(root)
      expect(thrown.kind).toBe('HTTP')
      expect(thrown.status).toBe(500)
      const printed = [
        inspect(thrown, { depth: Number.POSITIVE_INFINITY }),
        JSON.stringify({ m: thrown.message, b: thrown.body, d: thrown.details }),
        middle.message,
        root.message,
        String(thrown.stack),
      ].join('\n')
      expect(printed).not.toContain('API-SECRET-42')
      expect(printed).not.toContain('hunter2')
      expect(printed).not.toContain('dXNlcjpodW50ZXI=')
      expect(printed).not.toContain('plain')
      expect(thrown.message).toBe(`HTTP 500: identifier=abc&secret=${REDACTED}`)
      expect(root.code).toBe('ECONNRESET')
    })
  }

  it('mask validation issues and leave secret-free errors untouched', async () => {
    const recorder = createCallRecorder({ connector: 'probe' })
    recorder.redactor.addValue('s3cret-Value')
    const bad = new ValidationError('password s3cret-Value is too short', [
      { path: 'password', message: 'value s3cret-Value is too short' },
    ])
    const clean = new NotFoundError('VM 100 not found')
    for (const error of [bad, clean]) {
      await recorder
        .call({ system: 'x', action: 'a', access: 'read' }, async () => {
          throw error
        })
        .catch(() => undefined)
    }
    expect(bad.message).toBe(`password ${REDACTED} is too short`)
    expect(bad.issues[0]?.message).toBe(`value ${REDACTED} is too short`)
    expect(bad.field).toBe('password')
    expect(clean.message).toBe('VM 100 not found')
  })
})

describe('a URL path segment is not a key', () => {
  it('keeps "POST /access/ticket: reason" readable and still masks ?ticket= and ticket: values', () => {
    const r = createRedactor()
    expect(r.redactString('POST /api2/json/access/ticket: TLS verification failed')).toBe(
      'POST /api2/json/access/ticket: TLS verification failed',
    )
    expect(r.redactString('GET /x?ticket=abc&b=1')).toBe(`GET /x?ticket=${REDACTED}&b=1`)
    expect(r.redactString('ticket: abc')).toBe(`ticket: ${REDACTED}`)
    expect(r.redactString('{"auth_token":"abc"}')).toBe(`{"auth_token":"${REDACTED}"}`)
  })
})

/** Every `[start, end)` where one of `patterns` occurs, found the slow and obvious way. */
function naiveSpans(text: string, patterns: readonly string[]): number[] {
  const spans: number[] = []
  for (const p of patterns) {
    for (let at = text.indexOf(p); at !== -1; at = text.indexOf(p, at + 1)) spans.push(at, at + p.length)
  }
  return spans
}

describe('the secret matcher', () => {
  it('property: masks exactly the union of every occurrence of every pattern (against indexOf)', () => {
    const alphabet = fc.constantFrom(...'ab/.*(', 'é', '😀')
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: alphabet, minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        fc.string({ unit: alphabet, maxLength: 80 }),
        (patterns, text) => {
          const matcher = new SecretMatcher(patterns.map((p) => ({ text: p, wholeWord: false })))
          const spans: number[] = []
          matcher.scan(text, spans)
          expect(maskSpans(text, spans, '#')).toBe(maskSpans(text, naiveSpans(text, patterns), '#'))
        },
      ),
      { numRuns: 500 },
    )
  })

  it('counts a whole-word pattern only where no letter or digit is glued to it', () => {
    const matcher = new SecretMatcher([{ text: 'xpec', wholeWord: true }])
    const found = (text: string) => matcher.scan(text, [])
    expect(found('Unexpected')).toBe(false)
    expect(found('xpecting')).toBe(false)
    expect(found('2xpec')).toBe(false)
    expect(found('xpec')).toBe(true)
    expect(found('user xpec failed')).toBe(true)
    expect(found('"xpec"')).toBe(true)
    expect(found('a/xpec/b')).toBe(true)
  })
})

describe('secrets of any length and count (issue 17.2)', () => {
  const longSecret = (seed: string) => {
    // ~33 000 characters holding `/` and every RegExp metacharacter, as a service password might.
    const chunk = `${seed}/a.b*c+d?e^f$g{h}i(j)k|l[m]n\\o-`
    return chunk.repeat(Math.ceil(33_000 / chunk.length)).slice(0, 33_000)
  }

  it('masks a 33 000-character secret with / and metacharacters wherever it travels, and never throws', async () => {
    const secret = longSecret('pw')
    const recorder = createCallRecorder({ connector: 'probe', sink: new MemoryLogSink() })
    recorder.redactor.addValue(secret)
    recorder.redactor.addValue('store-key-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')
    const thrown = await recorder
      .call(
        { system: 'x', action: 'POST /users', access: 'write', request: { note: `x${secret}y` } },
        async () => {
          throw new HttpError(`echo ${encodeURIComponent(secret)} and ${JSON.stringify(secret)}`, {
            status: 500,
            body: `password=${encodeURIComponent(secret)}&k=store-key-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`,
          })
        },
      )
      .catch((e: unknown) => e as HttpError)
    const printed = `${thrown.message}\n${thrown.body}\n${thrown.stack}`
    expect(printed).toContain(REDACTED)
    for (const form of [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]) {
      expect(printed.includes(form.slice(0, 200))).toBe(false)
    }
    expect(printed).not.toContain('store-key-AAAA')
  })

  it('masks thousands of secrets in one redactor, each wherever it stands', () => {
    const secrets = Array.from({ length: 5000 }, (_, i) => `tok/${i}.(${(i * 7919).toString(36)})*+?`)
    const r = createRedactor({ values: secrets })
    const picked = [0, 1, 17, 999, 2500, 4999]
    const text = picked.map((i) => `id=${i} value ${secrets[i]} end`).join('\n')
    const out = r.redactString(text)
    for (const i of picked) expect(out).not.toContain(secrets[i])
    expect(out.split(REDACTED)).toHaveLength(picked.length + 1)
    expect(r.redactString('nothing secret here: 42')).toBe('nothing secret here: 42')
  })

  it('property: long secrets and many of them never survive, as declared or encoded', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({
            unit: fc.constantFrom(...METACHARACTERS),
            minLength: SHORT_SECRET_LENGTH,
            maxLength: 40,
          }),
          { minLength: 50, maxLength: 400 },
        ),
        fc.nat(),
        fc.string({ maxLength: 20 }),
        (secrets, pick, noise) => {
          const secret = (secrets[pick % secrets.length] as string).repeat(50)
          const r = createRedactor({ values: [...secrets, secret] })
          const out = r.redact({
            a: `${noise}${secret}${noise}`,
            b: [encodeURIComponent(secret)],
            c: new Error(`${noise}${JSON.stringify({ v: secret })}`),
          })
          for (const text of strings(out)) {
            for (const s of [...secrets, secret]) expect(text.includes(s)).toBe(false)
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('short secrets and secret positions (issue 18.8)', () => {
  it('leaves ordinary words alone when a short secret is part of them', () => {
    const r = createRedactor({ values: ['xpec', 'ab1'] })
    expect(r.redactString('Unexpected end of input')).toBe('Unexpected end of input')
    expect(r.redactString('fab12 cab1 ab12')).toBe('fab12 cab1 ab12')
  })

  it('masks a short secret as a whole word, as a whole value and in every secret position', () => {
    const r = createRedactor({ values: ['xpec'] })
    expect(r.redactString('login xpec refused')).toBe(`login ${REDACTED} refused`)
    expect(r.redact({ note: 'xpec' })).toEqual({ note: REDACTED })
    expect(r.redactString('{"v":"xpec"}')).toBe(`{"v":"${REDACTED}"}`)
    expect(r.redactString('password=xp&token: ab')).toBe(`password=${REDACTED}&token: ${REDACTED}`)
    expect(r.redactString('Authorization: Bearer zz')).toBe(`Authorization: ${REDACTED}`)
    expect(r.redact({ password: 'q' })).toEqual({ password: REDACTED })
  })

  it('masks the password of a URL written in free text, whatever its length', () => {
    const r = createRedactor()
    expect(r.redactString('connect https://admin:pw@panel.example:8443/x failed')).toBe(
      `connect https://admin:${REDACTED}@panel.example:8443/x failed`,
    )
    expect(r.redactString('postgres://app:s%40cret@db/x')).toBe(`postgres://app:${REDACTED}@db/x`)
    // no credentials, nothing masked
    expect(r.redactString('see https://example.com:443/a@b')).toBe('see https://example.com:443/a@b')
  })

  it('masks a long secret anywhere, even inside a word', () => {
    const r = createRedactor({ values: ['expect'] })
    expect(r.redactString('Unexpected')).toBe(`Un${REDACTED}ed`)
  })
})

describe('child redactors are layers (issue 17.4)', () => {
  it('a thousand children leave the parent as it was, and each sees later additions to the parent', () => {
    const parent = createRedactor({ values: ['app-secret-value'] })
    const before = JSON.stringify(parent)
    const children = Array.from({ length: 1000 }, (_, i) => parent.child({ values: [`job-secret-${i}`] }))
    expect(JSON.stringify(parent)).toBe(before)
    expect(parent.redactString('job-secret-7')).toBe('job-secret-7')
    parent.addValue('added-later-value')
    const child = children[7] as ReturnType<typeof parent.child>
    expect(child.redactString('job-secret-7 added-later-value app-secret-value')).toBe(
      `${REDACTED} ${REDACTED} ${REDACTED}`,
    )
    expect((children[8] as typeof child).redactString('job-secret-7')).toBe('job-secret-7')
  })
})

describe('module-log entries are redacted once', () => {
  it('a recorder masks every outside field and marks the entry for its redactor and the layers under it', async () => {
    const app = createRedactor({ values: ['App-Secret-123'] })
    const invocation = app.child({ values: ['Job-Secret-456'] })
    const sink = new MemoryLogSink()
    const calls = createCallRecorder({ connector: 't', serviceId: '9', sink, redactor: invocation })
    await calls.call(
      {
        system: 's',
        action: 'SET App-Secret-123',
        access: 'write',
        target: 'box Job-Secret-456',
        request: { password: 'plain', note: 'has App-Secret-123' },
      },
      async () => ({ echoed: 'Job-Secret-456' }),
    )
    await expect(
      calls.call({ system: 's', action: 'GET', access: 'read' }, async () => {
        throw new ConnectionError('refused App-Secret-123')
      }),
    ).rejects.toThrow()
    const [ok, failed] = sink.entries
    if (!ok || !failed) throw new Error('two entries expected')
    const text = JSON.stringify(sink.entries)
    expect(text).not.toContain('App-Secret-123')
    expect(text).not.toContain('Job-Secret-456')
    expect(text).not.toContain('plain')
    expect(ok.action).toBe(`SET ${REDACTED}`)
    expect(ok.serviceId).toBe('9')
    expect(failed.error?.message).toBe(`refused ${REDACTED}`)
    // The invocation's layer masks everything the app's redactor masks: a sink using the app's may skip.
    expect(isRedactedFor(ok, invocation)).toBe(true)
    expect(isRedactedFor(ok, app)).toBe(true)
    // Not for a redactor the recorder's does not cover: a layer over it, or an unrelated one.
    expect(isRedactedFor(ok, invocation.child({ values: ['other-secret'] }))).toBe(false)
    expect(isRedactedFor(ok, createRedactor())).toBe(false)
    // A copy is not marked: whoever changes an entry redacts it again.
    expect(isRedactedFor({ ...ok }, app)).toBe(false)
  })
})
