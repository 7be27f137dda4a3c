import type { Mailer } from '../plugins/mailer.js'
import { createHash } from 'node:crypto'
import type { OneTimeTokens } from './one-time-tokens.js'

export const VERIFICATION_TTL_SECONDS = 24 * 3600
export const RESET_TTL_SECONDS = 30 * 60
export const ERASURE_CONFIRM_TTL_SECONDS = 60 * 60

/**
 * A reset token is bound to the account as it was when the token was mailed: a later email
 * change, password change or completed reset changes this stamp and voids every older token.
 */
export const accountStamp = (user: { email: string; passwordHash: string | null }) => createHash('sha256').update(`${user.email}\n${user.passwordHash ?? ''}`).digest('base64url')

/**
 * The greeting of a mail: the account's name only once its address is verified. Until then the
 * name is whatever the person who registered the address typed, and a mail must not carry a
 * stranger's free text to someone else's mailbox.
 */
const hello = (user: { name: string; emailVerifiedAt: Date | null }) => (user.emailVerifiedAt ? `Hello ${user.name},` : 'Hello,')

// The mails an account receives; each carries a single-use token in a link to the shop's site.
export function createAccountMail(deps: { mailer: Mailer; tokens: OneTimeTokens; publicUrl: string }) {
  return {
    async sendVerification(user: { id: string; email: string; name: string; emailVerifiedAt: Date | null }) {
      const token = await deps.tokens.issue('email-verification', { userId: user.id, email: user.email }, VERIFICATION_TTL_SECONDS)
      deps.mailer.sendLater({
        to: user.email,
        subject: 'Confirm your email address',
        text: `${hello(user)}\n\nconfirm your email address by opening this link within 24 hours:\n${deps.publicUrl}/verify-email?token=${token}\n`,
      })
    },
    /** To the owner on every change of how the account is entered: a provider linked, two-factor on or off. */
    sendSecurityNotice(user: { email: string; name: string; emailVerifiedAt: Date | null }, change: string) {
      deps.mailer.sendLater({
        to: user.email,
        subject: 'A change to how your account is signed in to',
        text: `${hello(user)}\n\n${change}\n\nIf it was not you, reset your password at ${deps.publicUrl}/forgot-password: that ends every session and removes the provider links you did not confirm. Then contact us.\n`,
      })
    },
    /** To the address an account asked to move to: following the link makes the change. */
    async sendEmailChange(user: { id: string; email: string }, newEmail: string) {
      const token = await deps.tokens.issue('email-verification', { userId: user.id, email: newEmail, from: user.email }, VERIFICATION_TTL_SECONDS)
      deps.mailer.sendLater({
        to: newEmail,
        subject: 'Confirm your new email address',
        text: `Hello,\n\nan account asked to use this address from now on. Confirm it by opening this link within 24 hours:\n${deps.publicUrl}/verify-email?token=${token}\n\nIf you did not ask for this, ignore this mail; nothing changes.\n`,
      })
    },
    /** To an account's current address when a move to another one is asked, whether or not that one is free. */
    sendEmailChangeNotice(user: { email: string; name: string; emailVerifiedAt: Date | null }, newEmail: string) {
      deps.mailer.sendLater({
        to: user.email,
        subject: 'A change of your email address was asked',
        text: `${hello(user)}\n\nsomeone signed in to your account asked to move it to ${newEmail}. It moves only when that address confirms.\n\nIf it was not you, change your password at ${deps.publicUrl}/account and sign out everywhere.\n`,
      })
    },
    /** To the owner of an address another account asked to move to; carries no token. */
    sendEmailChangeAttempt(user: { email: string; name: string; emailVerifiedAt: Date | null }) {
      deps.mailer.sendLater({
        to: user.email,
        subject: 'Someone asked to move an account to your address',
        text: `${hello(user)}\n\nanother account asked to move to your address, which already has an account with us; nothing was changed and yours is unchanged.\nIf it was not you, you can ignore this mail.\n`,
      })
    },
    /** To the owner of an address someone tried to register again; carries no token (nothing to act on but their own sign-in). */
    sendRegistrationAttempt(user: { email: string; name: string; emailVerifiedAt: Date | null }) {
      deps.mailer.sendLater({
        to: user.email,
        subject: 'Someone tried to register with your address',
        text: `${hello(user)}\n\nsomeone tried to register with your address, which already has an account with us; no new account was made and yours is unchanged.\n\nIf it was you, sign in at ${deps.publicUrl}/sign-in, or reset your password at ${deps.publicUrl}/forgot-password if you have forgotten it.\nIf it was not you, you can ignore this mail.\n`,
      })
    },
    /** To the owner who asked to erase the account: the token confirms it (POST /users/me/erasure/confirm). */
    async sendErasureConfirmation(user: { id: string; email: string; name: string; emailVerifiedAt: Date | null; passwordHash: string | null }) {
      const token = await deps.tokens.issue('account-erasure', { userId: user.id, stamp: accountStamp(user) }, ERASURE_CONFIRM_TTL_SECONDS)
      deps.mailer.sendLater({
        to: user.email,
        subject: 'Confirm that your account should be erased',
        text: `${hello(user)}\n\nyou asked us to erase your account and the personal data we hold about you. This cannot be undone: your orders are kept for our accounts with your name, email and address removed, and everything else goes.\n\nConfirm within an hour by opening this link while signed in:\n${deps.publicUrl}/erase-account?token=${token}\n\nIf you did not ask for this, ignore this mail and change your password; nothing is erased.\n`,
      })
    },
    async sendPasswordReset(user: { id: string; email: string; name: string; emailVerifiedAt: Date | null; passwordHash: string | null }) {
      const token = await deps.tokens.issue('password-reset', { userId: user.id, stamp: accountStamp(user) }, RESET_TTL_SECONDS)
      deps.mailer.sendLater({
        to: user.email,
        subject: 'Reset your password',
        text: `${hello(user)}\n\nreset your password by opening this link within 30 minutes:\n${deps.publicUrl}/reset-password?token=${token}\n\nIf you did not ask for this, ignore this mail; your password is unchanged.\n`,
      })
    },
  }
}
export type AccountMail = ReturnType<typeof createAccountMail>
