import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

// Endpoint signing secrets. We sign with them on every delivery, so they are kept recoverable:
// encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from WEBHOOK_SECRETS_KEY, stored
// as `v1.<iv>.<tag>.<ciphertext>` (base64url). A database dump alone does not reveal them.

/** A new signing secret: 32 random bytes, shown to the admin once. */
export const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64url')}`

export function createSecretBox(keyMaterial: string) {
  const key = Buffer.from(hkdfSync('sha256', keyMaterial, 'shop-webhooks', 'webhook endpoint signing secrets v1', 32))
  return {
    seal(secret: string) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
      return ['v1', iv, cipher.getAuthTag(), sealed].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.')
    },
    /** Throws when the value was sealed under another key (WEBHOOK_SECRETS_KEY changed): rotate the secret. */
    open(stored: string) {
      const [version, iv, tag, sealed] = stored.split('.')
      if (version !== 'v1' || !iv || !tag || sealed === undefined) throw new Error('unknown webhook secret format')
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]).toString('utf8')
    },
  }
}
export type SecretBox = ReturnType<typeof createSecretBox>
