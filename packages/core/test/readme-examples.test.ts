import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'

/**
 * Every ```ts block of every package README is a complete program: it is written into
 * `packages/<name>/.readme-examples/` (so `@panelkit/<name>` and its dependencies resolve as they would
 * for a user of the package), type-checked with the repository's compiler options, and, when the line
 * before the fence is `<!-- runnable -->`, run with tsx against the simulators and expected to exit 0.
 */

interface Example {
  pkg: string
  index: number
  line: number
  runnable: boolean
  code: string
  file: string
}

const packagesDir = fileURLToPath(new URL('../..', import.meta.url))
const EXAMPLES_DIR = '.readme-examples'
const RUNNABLE = '<!-- runnable -->'

function extractTsBlocks(markdown: string): { line: number; runnable: boolean; code: string }[] {
  const lines = markdown.split('\n')
  const blocks: { line: number; runnable: boolean; code: string }[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] ?? '')) continue
    let before = i - 1
    while (before >= 0 && (lines[before] ?? '').trim() === '') before--
    const runnable = (lines[before] ?? '').trim() === RUNNABLE
    const start = i + 1
    let end = start
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++
    blocks.push({ line: i + 1, runnable, code: lines.slice(start, end).join('\n') })
    i = end
  }
  return blocks
}

const examples: Example[] = []
for (const pkg of readdirSync(packagesDir).sort()) {
  const readme = join(packagesDir, pkg, 'README.md')
  if (!existsSync(readme)) continue
  const dir = join(packagesDir, pkg, EXAMPLES_DIR)
  extractTsBlocks(readFileSync(readme, 'utf8')).forEach((block, index) => {
    examples.push({ pkg, index: index + 1, ...block, file: join(dir, `example-${index + 1}.ts`) })
  })
}

function writeExamples(): void {
  for (const pkg of new Set(examples.map((e) => e.pkg))) {
    const dir = join(packagesDir, pkg, EXAMPLES_DIR)
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
  }
  for (const e of examples) writeFileSync(e.file, `${e.code}\n`)
}

afterAll(() => {
  for (const pkg of new Set(examples.map((e) => e.pkg))) {
    rmSync(join(packagesDir, pkg, EXAMPLES_DIR), { recursive: true, force: true })
  }
})

const name = (e: Example) => `${e.pkg}/README.md block ${e.index} (line ${e.line})`

describe('README examples', () => {
  it('the extractor finds blocks, their lines and the runnable marker', () => {
    const md = [
      '# T',
      '',
      '<!-- runnable -->',
      '',
      '```ts',
      'a()',
      '```',
      'text',
      '```ts',
      'b()',
      '```',
    ].join('\n')
    expect(extractTsBlocks(md)).toEqual([
      { line: 5, runnable: true, code: 'a()' },
      { line: 9, runnable: false, code: 'b()' },
    ])
  })

  it('every package README has TypeScript examples, and some are runnable', () => {
    for (const pkg of ['axigen', 'computestacks', 'core', 'proxmox', 'whmcs']) {
      expect(examples.filter((e) => e.pkg === pkg).length, pkg).toBeGreaterThan(0)
    }
    expect(examples.filter((e) => e.runnable).length).toBeGreaterThanOrEqual(4)
  })

  it('every ```ts block type-checks as written', { timeout: 300_000 }, () => {
    writeExamples()
    const configFile = join(packagesDir, '..', 'tsconfig.base.json')
    const config = ts.readConfigFile(configFile, (f) => ts.sys.readFile(f))
    const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, join(packagesDir, '..'))
    const program = ts.createProgram(
      examples.map((e) => e.file),
      { ...parsed.options, noEmit: true, declaration: false, declarationMap: false, sourceMap: false },
    )
    const wanted = new Set(examples.map((e) => e.file))
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file === undefined || wanted.has(d.file.fileName))
      .map((d) => {
        const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
        if (!d.file || d.start === undefined) return message
        const example = examples.find((e) => e.file === d.file?.fileName) as Example
        const { line } = d.file.getLineAndCharacterOfPosition(d.start)
        return `${example.pkg}/README.md line ${example.line + 1 + line}: ${message}`
      })
    expect(problems).toEqual([])
  })

  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
  for (const example of examples.filter((e) => e.runnable)) {
    it(`${name(example)} runs against the simulators`, { timeout: 120_000 }, async () => {
      if (!existsSync(example.file)) writeExamples()
      const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--conditions=@panelkit/source', '--import', tsx, example.file],
          {
            cwd: join(packagesDir, example.pkg),
            timeout: 100_000,
            env: { ...process.env, NODE_NO_WARNINGS: '1' },
          },
          (error, stdout, stderr) => {
            const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
            resolve({ code, output: `${stdout}${stderr}` })
          },
        )
      })
      expect(result.code, `${relative(packagesDir, example.file)} said:\n${result.output}`).toBe(0)
    })
  }
})
