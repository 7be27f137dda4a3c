import { and, eq, inArray, lt, sql } from 'drizzle-orm'
import { sentMail } from '../db/schema/index.js'
import type { Db } from '../db/client.js'
import type { Faults } from './faults.js'

// Mail sent once. The outbox delivers at least once: a process that dies after SMTP accepted a
// mail and before the outbox marked its event done sends it again on the retry. The outbox's
// mail handlers send through this wrapper, which records each recipient of a Message-ID (the
// event's id) right after SMTP accepts and, on a retry, sends only to those not recorded. The
// window left is between SMTP's answer and this record's insert (one local statement), instead
// of the whole handler and the outbox's mark; a mail retried there still carries the same
// Message-ID, which mail clients show once.

export interface MailMessage {
  to: string | string[]; subject: string; text: string; html?: string; messageId?: string
  /**
   * The first run of the event this Message-ID names (its first claim): no earlier run can have
   * sent it, so there is no record to look up. A retry always looks.
   */
  firstDelivery?: boolean
}
export interface MailSender { send(message: MailMessage): Promise<void> }

/** How long a record is kept: longer than any outbox retry waits (its backoff is at most 5 minutes). */
export const SENT_MAIL_RETENTION_DAYS = 7

export function createSentMail({ db, mailer, faults }: { db: Db; mailer: MailSender; faults?: Faults }) {
  return {
    /** Sends to the recipients that have not had this Message-ID yet; without a Message-ID, sends as is. */
    async send(message: MailMessage) {
      const { messageId, firstDelivery, ...mail } = message
      if (!messageId) return mailer.send(mail)
      const recipients = [...new Set([message.to].flat().map((r) => r.toLowerCase()))]
      const had = firstDelivery ? [] : await db.select({ recipient: sentMail.recipient }).from(sentMail)
        .where(and(eq(sentMail.messageId, messageId), inArray(sentMail.recipient, recipients)))
      const done = new Set(had.map((r) => r.recipient))
      const to = recipients.filter((r) => !done.has(r))
      if (!to.length) return
      await mailer.send({ ...mail, messageId, to })
      await db.insert(sentMail).values(to.map((recipient) => ({ messageId, recipient }))).onConflictDoNothing()
      // The handler is done; the outbox marks its event next. A crash here is what the record is for.
      faults?.at('mail.after-send')
    },

    /** Removes records older than `days`. */
    async purge(days = SENT_MAIL_RETENTION_DAYS) {
      const gone = await db.delete(sentMail).where(lt(sentMail.sentAt, sql`now() - make_interval(days => ${days})`)).returning({ id: sentMail.messageId })
      return { removed: gone.length }
    },
  }
}
export type SentMail = ReturnType<typeof createSentMail>
