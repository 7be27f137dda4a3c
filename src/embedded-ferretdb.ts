import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createServer, connect } from 'node:net'
import { homedir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'

// Starts FerretDB (a MongoDB wire-protocol server) on its SQLite backend as a child process, for
// `npm start` with no MONGODB_URL. Production sets MONGODB_URL and never comes here.

export class FerretDbUnavailable extends Error {
  override name = 'FerretDbUnavailable'
}

const INSTALL_HINT = 'install Go 1.22 or newer (https://go.dev/dl/, or `apt-get install golang`) and start again: FerretDB is then built once by `bash test/install-ferretdb.sh`; or set FERRETDB_BIN to a ferretdb v1.24 binary, or MONGODB_URL to a MongoDB server'
const INSTALL_SCRIPT = fileURLToPath(new URL('../test/install-ferretdb.sh', import.meta.url))

const onPath = (name: string) => (process.env.PATH ?? '').split(delimiter).filter(Boolean).some((dir) => {
  try { accessSync(join(dir, name), constants.X_OK); return true } catch { return false }
})

/**
 * Builds FerretDB with Go once (into Go's bin directory, where findBinary looks next time), with
 * Go's own progress on stderr. Undefined when Go is not installed or the build fails.
 */
export async function buildFerretDb(log: (message: string) => void): Promise<string | undefined> {
  if (!onPath('go') || !existsSync(INSTALL_SCRIPT)) return undefined
  log('FerretDB (the MongoDB-compatible server of the embedded mode) is not installed: building it once with Go; this takes a minute or two')
  const started = Date.now()
  const built = await new Promise<string | undefined>((res) => {
    let out = ''
    const child = spawn('bash', [INSTALL_SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] })
    child.stdout.on('data', (d) => { out += d })
    child.once('error', () => res(undefined))
    child.once('exit', (code) => res(code === 0 ? out.trim().split('\n').pop() : undefined))
  })
  log(built ? `FerretDB built in ${Math.round((Date.now() - started) / 1000)} s: ${built}` : 'FerretDB could not be built (see the output above)')
  return built
}

function findBinary(explicit?: string): string | undefined {
  const candidates = explicit
    ? [explicit]
    : [
        ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'ferretdb')),
        join(process.env.GOPATH ?? join(homedir(), 'go'), 'bin', 'ferretdb'),
      ]
  return candidates.find((file) => {
    try { accessSync(file, constants.X_OK); return true } catch { return false }
  })
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer().once('error', rej).listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => res(port))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); res(true) })
    socket.once('error', () => res(false))
  })
}

export interface EmbeddedFerretDb { url: string; binary: string; stop(): Promise<void> }

export async function startEmbeddedFerretDb(opts: { binary?: string; dataDir: string; timeoutMs?: number; build?: (log: (message: string) => void) => Promise<string | undefined>; log?: (message: string) => void }): Promise<EmbeddedFerretDb> {
  const binary = findBinary(opts.binary) ?? (opts.binary || !opts.build ? undefined : await opts.build(opts.log ?? (() => {})))
  if (!binary) throw new FerretDbUnavailable(`no ferretdb binary found; ${INSTALL_HINT}`)
  const dataDir = resolve(opts.dataDir)
  mkdirSync(dataDir, { recursive: true })
  // The port is free when picked, but any outgoing connection may take it before FerretDB binds it:
  // then it exits at once ("address already in use"), and another port is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnFreePort(binary, dataDir, opts.timeoutMs ?? 15_000)
    } catch (err) {
      if (attempt >= 3 || !(err instanceof FerretDbUnavailable) || !/address already in use/i.test(err.message)) throw err
    }
  }
}

async function spawnOnFreePort(binary: string, dataDir: string, timeoutMs: number): Promise<EmbeddedFerretDb> {
  const port = await freePort()
  let output = ''
  const child: ChildProcess = spawn(binary, [
    '--handler=sqlite', `--sqlite-url=file:${dataDir}/`, `--state-dir=${dataDir}`,
    `--listen-addr=127.0.0.1:${port}`, '--debug-addr=127.0.0.1:0', '--telemetry=disable', '--log-level=WARN',
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.on('data', (d) => { output = (output + d).slice(-2000) })
  child.stderr?.on('data', (d) => { output = (output + d).slice(-2000) })
  let exited = false
  child.once('exit', () => { exited = true })
  child.once('error', () => { exited = true })

  const deadline = Date.now() + timeoutMs
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new FerretDbUnavailable(`ferretdb (${binary}) did not start: ${output.trim().split('\n').pop() ?? 'no output'}; ${INSTALL_HINT}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url: `mongodb://127.0.0.1:${port}/`,
    binary,
    stop: () => new Promise<void>((res) => {
      if (exited) return res()
      child.once('exit', () => res())
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 5000).unref()
    }),
  }
}
