import fp from 'fastify-plugin'
import type { Transporter } from 'nodemailer'

export interface MailMessage { to: string | string[]; subject: string; text: string; html?: string; messageId?: string }
export interface Mailer {
  /** Sends now and throws when SMTP refuses or is away (the outbox retries it). */
  send(message: MailMessage): Promise<void>
  /** Sends in the background: the caller never waits on, nor fails because of, SMTP. */
  sendLater(message: MailMessage): void
  /** Resolves when every background send has finished (used at shutdown and by tests). */
  flush(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance { mailer: Mailer }
}

// Mail goes out over SMTP when SMTP_URL is set; otherwise each message is written to the log,
// which is how development reads its verification and reset links.
export default fp(async (app) => {
  const { smtpUrl, from } = app.config.mail
  // nodemailer is loaded only when there is an SMTP server to send to.
  const transport: Transporter | undefined = smtpUrl ? (await import('nodemailer')).default.createTransport(smtpUrl) : undefined
  const pending = new Set<Promise<void>>()

  const deliver = async (message: MailMessage) => {
    if (!transport) {
      app.log.info({ mail: message }, 'mail (not sent: SMTP_URL is unset)')
      return
    }
    await transport.sendMail({ from, ...message })
  }

  const mailer: Mailer = {
    send: deliver,
    sendLater(message) {
      const sending = deliver(message)
        .catch((err: Error) => app.log.error({ err: err.message, to: message.to, subject: message.subject }, 'mail delivery failed'))
        .finally(() => pending.delete(sending))
      pending.add(sending)
    },
    async flush() { await Promise.all([...pending]) },
  }
  app.decorate('mailer', mailer)
  app.addHook('onClose', async () => {
    await mailer.flush()
    transport?.close()
  })
  app.log.info({ mail: smtpUrl ? 'smtp' : 'log' }, smtpUrl ? 'Mail: SMTP' : 'Mail: written to the log (set SMTP_URL to send)')
}, { name: 'mailer', dependencies: ['config'] })
