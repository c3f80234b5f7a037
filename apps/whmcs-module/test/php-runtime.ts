import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

/**
 * The PHP that runs the module in the tests, chosen in this order:
 *
 * 1. `PANELKIT_PHP`: a php command or path, used as it is (when it cannot run the module, the suite fails
 *    and says why; there is no fallback from an explicit choice);
 * 2. `php` on the PATH, when it has curl (Debian's php-cli and php-curl, as `.ci/run` installs them);
 * 3. PHP.wasm from the npm registry (`@php-wasm/node`, PHP 8.2 compiled to WebAssembly, shipped in the
 *    package), for a machine with only Node and npm. `PANELKIT_USE_NPM_RUNTIMES=1` skips step 2.
 *
 * Every call runs PHP's own command-line front end with its arguments and standard input and answers with
 * the exit code, standard output and standard error, as a `php` process would. A PHP.wasm call gets a
 * fresh PHP (new memory, nothing kept from an earlier call), as a process does; only the compiled
 * WebAssembly module is shared between calls. PHP.wasm's curl is real libcurl: its sockets reach the
 * host's TCP through a WebSocket-to-TCP relay that `@php-wasm/node` runs on 127.0.0.1 in this process,
 * and TLS is done by the OpenSSL inside the WebAssembly module.
 */
export interface PhpRuntime {
  /** 'env' (PANELKIT_PHP), 'system' (php on the PATH) or 'npm' (PHP.wasm). */
  source: 'env' | 'system' | 'npm'
  /** What runs PHP, for the test output, e.g. "PHP 8.2.33 (PHP.wasm, npm @php-wasm/node 3.1.56)". */
  label: string
  run(args: string[], stdin?: string): Promise<PhpOutput>
}

export interface PhpOutput {
  code: number
  stdout: string
  stderr: string
}

/** The PHP chosen (and why the system php was passed over, when it was), or why there is none. */
export type PhpChoice = { runtime: PhpRuntime; passedOver?: string } | { problem: string }

/** PHP.wasm's version: the PHP minor version Debian 12 ships, as `.ci/run` installs it. */
const WASM_PHP_VERSION = '8.2'
const CURL_CHECK = 'echo PHP_VERSION, " ", function_exists("curl_init") ? "curl" : "nocurl";'

function processRuntime(command: string, source: 'env' | 'system', version: string): PhpRuntime {
  return {
    source,
    label: `PHP ${version} (${source === 'env' ? `PANELKIT_PHP=${command}` : `system ${command} on the PATH`})`,
    run: (args, stdin) =>
      new Promise((resolve, reject) => {
        const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
        let stdout = ''
        let stderr = ''
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString()
        })
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString()
        })
        child.on('error', reject)
        child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
        child.stdin.end(stdin ?? '')
      }),
  }
}

/** `command -r …`: its version when it runs and has curl, or why not. */
function probeProcess(command: string): { version: string } | { problem: string } {
  const v = spawnSync(command, ['-r', CURL_CHECK], { encoding: 'utf8' })
  if (v.error)
    return {
      problem:
        (v.error as NodeJS.ErrnoException).code === 'ENOENT'
          ? command.includes('/')
            ? `${command} does not exist`
            : `no ${command} on the PATH`
          : `${command} cannot be run (${v.error.message})`,
    }
  const [version, curl] = v.stdout.trim().split(' ')
  if (v.status !== 0 || !version) return { problem: `${command} -r failed (exit ${v.status}): ${v.stderr}` }
  if (curl !== 'curl') return { problem: `${command} (PHP ${version}) has no curl extension` }
  return { version }
}

/*
 * The parts of @php-wasm/node, @php-wasm/universal and WebAssembly used here, typed by hand: the packages'
 * own typings re-export a directory ('./lib'), which NodeNext resolution does not follow, and this
 * project's TypeScript libs (ES2023, node) declare no WebAssembly values.
 */
type WasmModule = object
type WasmImports = object
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>
  instantiate(module: WasmModule, imports: WasmImports): Promise<object>
}
interface PhpWasmNode {
  getPHPLoaderModule(version: string): Promise<{ dependencyFilename: string }>
  loadNodeRuntime(version: string, options: { emscriptenOptions: Record<string, unknown> }): Promise<number>
  useHostFilesystem(php: object): void
}
interface PhpWasmUniversal {
  PHP: new (
    runtimeId: number,
  ) => {
    cli(
      argv: string[],
    ): Promise<{ exitCode: Promise<number>; stdoutText: Promise<string>; stderrText: Promise<string> }>
    exit(): void
  }
}

async function wasmRuntime(): Promise<PhpRuntime> {
  const node = (await import('@php-wasm/node')) as unknown as PhpWasmNode
  const { PHP } = (await import('@php-wasm/universal')) as unknown as PhpWasmUniversal
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly
  const require = createRequire(import.meta.url)
  const { version: packageVersion } = require('@php-wasm/node/package.json') as { version: string }
  // The loader module of the mode this Node.js supports (JSPI where it has it, asyncify otherwise) names
  // its .wasm file: compiled once here, instantiated afresh for every call.
  const loader = await node.getPHPLoaderModule(WASM_PHP_VERSION)
  const compiled = await wasm.compile(readFileSync(loader.dependencyFilename))
  let processId = 0

  async function run(args: string[], stdin = ''): Promise<PhpOutput> {
    const input = Buffer.from(stdin)
    let read = 0
    processId += 1
    // Emscripten waits for instantiateWasm's callback and has no way to hear of a failure: race it.
    let instantiationFailed: (error: unknown) => void = () => undefined
    const failure = new Promise<never>((_, reject) => {
      instantiationFailed = reject
    })
    const loading = node.loadNodeRuntime(WASM_PHP_VERSION, {
      emscriptenOptions: {
        processId,
        // Standard input, a byte at a time, then end of file.
        stdin: () => (read < input.length ? (input[read++] as number) : null),
        instantiateWasm: (imports: WasmImports, done: (instance: object, module: WasmModule) => void) => {
          wasm
            .instantiate(compiled, imports)
            .then((instance) => done(instance, compiled), instantiationFailed)
          return {}
        },
      },
    })
    const id = await Promise.race([loading, failure])
    const php = new PHP(id)
    // The host's files at their own paths (the module, the harness, a CA file), as a process sees them.
    node.useHostFilesystem(php)
    const response = await php.cli(['php', ...args])
    const [code, stdout, stderr] = await Promise.all([
      response.exitCode,
      response.stdoutText,
      response.stderrText,
    ])
    // The runtime's exit closes what @php-wasm/node opened for it (its socket relay's listener).
    php.exit()
    return { code, stdout, stderr }
  }

  const probe = await run(['-r', CURL_CHECK])
  const [version, curl] = probe.stdout.trim().split(' ')
  if (probe.code !== 0 || curl !== 'curl')
    throw new Error(`PHP.wasm did not run with curl (exit ${probe.code}): ${probe.stdout}${probe.stderr}`)
  return { source: 'npm', label: `PHP ${version} (PHP.wasm, npm @php-wasm/node ${packageVersion})`, run }
}

/** The PHP to run the module with, by the order above, or why there is none. */
export async function findPhp(env: NodeJS.ProcessEnv = process.env): Promise<PhpChoice> {
  const explicit = env.PANELKIT_PHP?.trim()
  if (explicit) {
    const probe = probeProcess(explicit)
    if ('problem' in probe)
      return { problem: `PANELKIT_PHP names a PHP that cannot run the module: ${probe.problem}` }
    return { runtime: processRuntime(explicit, 'env', probe.version) }
  }
  let passedOver: string
  if (env.PANELKIT_USE_NPM_RUNTIMES === '1') {
    passedOver = 'PANELKIT_USE_NPM_RUNTIMES=1: the system php is not looked for'
  } else {
    const probe = probeProcess('php')
    if ('version' in probe) return { runtime: processRuntime('php', 'system', probe.version) }
    passedOver = probe.problem
  }
  try {
    return { runtime: await wasmRuntime(), passedOver }
  } catch (error) {
    return {
      problem: `no PHP with curl: ${passedOver}, and PHP.wasm from npm (@php-wasm/node) did not start: ${(error as Error).message}`,
    }
  }
}
