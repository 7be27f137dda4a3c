import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

// Secrets the server must read back (TOTP seeds), sealed with AES-256-GCM:
// `v1.<key id>.<iv>.<tag>.<ciphertext>`, base64url parts. The first key seals; every key opens,
// so a key is rotated by putting a new one first and keeping the old one until nothing uses it.
// `context` (e.g. the user id) is authenticated with the secret, so a sealed value copied to
// another row does not open.

export interface SecretKey { id: string; key: Buffer }

export function parseSecretKeys(spec: string): SecretKey[] {
  const keys = spec.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const [id, encoded, ...rest] = part.split(':')
    const key = Buffer.from(encoded ?? '', 'base64')
    if (!id || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || rest.length || key.length !== 32) throw new Error('each key is <id>:<32 bytes in base64>, the id letters, digits, _ or -')
    return { id, key }
  })
  if (!keys.length) throw new Error('at least one key is needed')
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error('key ids must differ')
  return keys
}

export function createSecretBox(keys: SecretKey[]) {
  const current = keys[0]!
  const byId = new Map(keys.map((k) => [k.id, k.key]))
  return {
    seal(plain: string, context: string): string {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', current.key, iv).setAAD(Buffer.from(context))
      const sealed = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return ['v1', current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), sealed.toString('base64url')].join('.')
    },
    /** The plain secret, and whether it should be sealed again (stored before encryption, or under an older key). */
    open(stored: string, context: string): { plain: string; stale: boolean } {
      if (!stored.startsWith('v1.')) return { plain: stored, stale: true }
      const [, id, iv, tag, sealed] = stored.split('.')
      const key = byId.get(id ?? '')
      if (!key) throw new Error(`the secret was sealed with key "${id}", which is not configured`)
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv!, 'base64url')).setAAD(Buffer.from(context))
      decipher.setAuthTag(Buffer.from(tag!, 'base64url'))
      const plain = Buffer.concat([decipher.update(Buffer.from(sealed!, 'base64url')), decipher.final()]).toString('utf8')
      return { plain, stale: id !== current.id }
    },
  }
}
export type SecretBox = ReturnType<typeof createSecretBox>
