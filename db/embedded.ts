import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

// The embedded database is one PGlite directory, and PGlite allows one process to open it. The
// API opens it and serves it over the PostgreSQL wire protocol on a local port, so the CLI
// commands (create-admin, seed, migrate), psql and drizzle-kit connect through the API while it
// runs, like clients of a real server. A lock file beside the directory says who holds it: a
// second process that would open the directory itself refuses with a clear message instead of
// silently overwriting the other's data. A lock whose process is gone is stale and taken over.

export interface EmbeddedLock { pid: number; port: number | null; command: string }

export class EmbeddedDbBusy extends Error {
  override name = 'EmbeddedDbBusy'
}

export const lockPathOf = (dataDir: string) => `${resolve(dataDir)}.lock.json`

function alive(pid: number) {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

function readLock(path: string): EmbeddedLock | undefined {
  try { return JSON.parse(readFileSync(path, 'utf8')) as EmbeddedLock } catch { return undefined }
}

/** The live holder of the directory, this process included, if any (a stale lock is removed). */
export function holderOf(dataDir: string): EmbeddedLock | undefined {
  const path = lockPathOf(dataDir)
  const lock = readLock(path)
  if (!lock || alive(lock.pid)) return lock
  try { unlinkSync(path) } catch { /* someone else cleaned it */ }
  return undefined
}

/** Takes the directory for this process, or throws EmbeddedDbBusy naming the holder. */
export function takeLock(dataDir: string, command: string) {
  const path = lockPathOf(dataDir)
  // A fresh checkout has no data/ yet.
  mkdirSync(dirname(path), { recursive: true })
  for (let attempt = 0; attempt < 3; attempt++) {
    const holder = holderOf(dataDir)
    if (holder) throw busy(dataDir, holder)
    try {
      writeFileSync(path, JSON.stringify({ pid: process.pid, port: null, command } satisfies EmbeddedLock), { flag: 'wx' })
      return {
        setPort(port: number) { writeFileSync(path, JSON.stringify({ pid: process.pid, port, command } satisfies EmbeddedLock)) },
        release() {
          if (readLock(path)?.pid !== process.pid) return
          try { unlinkSync(path) } catch { /* gone */ }
        },
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  throw new EmbeddedDbBusy(`Could not take the embedded database ${resolve(dataDir)} (lock file ${path})`)
}

export function busy(dataDir: string, holder: EmbeddedLock) {
  return new EmbeddedDbBusy(holder.port
    ? `The embedded database ${resolve(dataDir)} is served by another API (pid ${holder.pid}, port ${holder.port}): stop it, or set PGLITE_DATA_DIR to another directory`
    : `The embedded database ${resolve(dataDir)} is open by another process (pid ${holder.pid}: ${holder.command}); wait for it to finish, or stop it`)
}

/** Serves an open PGlite on 127.0.0.1 (the given port, or any free one when it is taken). */
export async function serveEmbedded(client: PGlite, port: number): Promise<{ port: number; stop(): Promise<void> }> {
  for (const candidate of [port, 0]) {
    const server = new PGLiteSocketServer({ db: client, host: '127.0.0.1', port: candidate, maxConnections: 16 })
    try {
      await server.start()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && candidate !== 0) continue
      throw err
    }
    const bound = Number(server.getServerConn().split(':').pop())
    return { port: bound, stop: () => server.stop() }
  }
  throw new Error('unreachable')
}

export const embeddedUrl = (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`
