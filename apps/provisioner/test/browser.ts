import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The Chromium the console's browser test drives, chosen in this order:
 *
 * 1. `PANELKIT_CHROMIUM`: the path of a Chromium (or Chrome) binary, used as it is (a missing file fails
 *    the test with the reason; there is no fallback from an explicit choice);
 * 2. the system's `chromium` (Debian's package, as `.ci/run` installs it): the first `chromium` or
 *    `chromium-browser` on the PATH;
 * 3. the npm package `@sparticuz/chromium`, a headless Chromium shipped brotli-compressed inside the
 *    package, for a machine with only Node and npm. `PANELKIT_USE_NPM_RUNTIMES=1` skips step 2.
 *
 * The npm Chromium is unpacked once into the package's node_modules/.cache (about 210 MB, a few seconds)
 * and runs with the libraries and fonts that come with it (NSS and Expat, Open Sans), so it needs nothing
 * from the system beyond the C library; system fonts are used too where there are any.
 */
export interface ChromiumChoice {
  source: 'env' | 'system' | 'npm'
  /** For the test output, e.g. "npm @sparticuz/chromium 153.0.0". */
  label: string
  /** Resolves the executable (unpacking the npm one on first use) and the environment it runs with. */
  prepare(): Promise<{ executablePath: string; env?: Record<string, string> }>
}

/** The flags known to run headless Chromium on these machines (a closed network, root, no GPU). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

function onPath(names: string[], env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    for (const name of names) {
      const candidate = join(dir, name)
      try {
        if (statSync(candidate).isFile()) return candidate
      } catch {
        // not here
      }
    }
  }
  return undefined
}

/** Unpacks @sparticuz/chromium into the package's cache once (atomically: a half-written one is never used). */
function npmChromium(): ChromiumChoice {
  const require = createRequire(import.meta.url)
  const entry = require.resolve('@sparticuz/chromium')
  const packageDir = join(dirname(entry), '..')
  const { version } = require(join(packageDir, 'package.json')) as { version: string }
  const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
  const cache = join(appDir, 'node_modules', '.cache', `sparticuz-chromium-${version}`)
  return {
    source: 'npm',
    label: `npm @sparticuz/chromium ${version}`,
    async prepare() {
      if (!existsSync(join(cache, 'chromium'))) {
        const staging = `${cache}.${process.pid}.tmp`
        rmSync(staging, { recursive: true, force: true })
        mkdirSync(staging, { recursive: true })
        // The package unpacks into os.tmpdir(): in a child process whose TMPDIR is the staging folder.
        const script = `
          import { join } from 'node:path'
          const { default: chromium, inflate } = await import(${JSON.stringify(entry)})
          await chromium.executablePath()
          await inflate(join(${JSON.stringify(join(packageDir, 'bin'))}, 'al2023.tar.br'))
        `
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
          env: { ...process.env, TMPDIR: staging },
          encoding: 'utf8',
          timeout: 120_000,
        })
        if (r.status !== 0 || !existsSync(join(staging, 'chromium'))) {
          rmSync(staging, { recursive: true, force: true })
          throw new Error(`@sparticuz/chromium could not be unpacked: ${r.error?.message ?? ''}${r.stderr}`)
        }
        // Its fonts.conf names /tmp/fonts; ours names the unpacked fonts and the system's.
        writeFileSync(
          join(staging, 'fonts.conf'),
          `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${join(cache, 'fonts', 'fonts')}</dir>\n  <dir>/usr/share/fonts</dir>\n  <cachedir>${join(cache, 'fonts-cache')}</cachedir>\n</fontconfig>\n`,
        )
        try {
          renameSync(staging, cache)
        } catch (error) {
          // Another run unpacked it first: use theirs.
          rmSync(staging, { recursive: true, force: true })
          if (!existsSync(join(cache, 'chromium'))) throw error
        }
      }
      const libs = join(cache, 'al2023', 'lib')
      const ld = process.env.LD_LIBRARY_PATH
      return {
        executablePath: join(cache, 'chromium'),
        env: {
          ...(process.env as Record<string, string>),
          LD_LIBRARY_PATH: ld ? `${libs}:${ld}` : libs,
          FONTCONFIG_FILE: join(cache, 'fonts.conf'),
        },
      }
    },
  }
}

/** The Chromium to drive, by the order above. Throws (the test fails) with the reason when there is none. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): ChromiumChoice {
  const explicit = env.PANELKIT_CHROMIUM?.trim()
  if (explicit) {
    return {
      source: 'env',
      label: `PANELKIT_CHROMIUM=${explicit}`,
      async prepare() {
        if (!existsSync(explicit))
          throw new Error(`PANELKIT_CHROMIUM names ${explicit}, which does not exist`)
        return { executablePath: explicit }
      },
    }
  }
  if (env.PANELKIT_USE_NPM_RUNTIMES !== '1') {
    const system = onPath(['chromium', 'chromium-browser'], env)
    if (system)
      return {
        source: 'system',
        label: `system ${system}`,
        prepare: async () => ({ executablePath: system }),
      }
  }
  try {
    return npmChromium()
  } catch (error) {
    throw new Error(
      `No Chromium: none on the PATH${env.PANELKIT_USE_NPM_RUNTIMES === '1' ? ' (not looked for: PANELKIT_USE_NPM_RUNTIMES=1)' : ''}, and the npm package @sparticuz/chromium is not installed (${(error as Error).message})`,
    )
  }
}
