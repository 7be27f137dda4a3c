import { SMTPServer } from 'smtp-server'
import type { AddressInfo } from 'node:net'
import { simpleParser } from 'mailparser'

export interface ReceivedMail { to: string[]; subject: string; text: string }

/** A real SMTP server on loopback (on `port`, or any free one) that keeps what it receives; closed at teardown. */
export async function startMailbox(t: { teardown(fn: () => unknown): void }, port = 0) {
  const received: ReceivedMail[] = []
  const waiters: (() => void)[] = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then((mail) => {
        received.push({ to: session.envelope.rcptTo.map((r) => r.address), subject: mail.subject ?? '', text: mail.text ?? '' })
        waiters.splice(0).forEach((wake) => wake())
        callback()
      }, callback)
    },
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port: listening } = server.server.address() as AddressInfo

  return {
    url: `smtp://127.0.0.1:${listening}`,
    received,
    /** Waits for the next mail to `to` whose text matches `pattern`, and returns the match. */
    async waitFor(to: string, pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        for (const mail of received) {
          const match = mail.to.includes(to) ? mail.text.match(pattern) : null
          if (match) { received.splice(received.indexOf(mail), 1); return match }
        }
        if (Date.now() > deadline) throw new Error(`no mail to ${to} matching ${pattern}`)
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 100) })
      }
    },
  }
}
