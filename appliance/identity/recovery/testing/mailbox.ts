import type { AddressInfo } from 'node:net';

import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server (the smtp-server package) on 127.0.0.1 with a free port,
 * keeping every message it receives, parsed by mailparser. With `credentials`
 * it requires AUTH with exactly that user and password.
 */
export class TestMailbox {
  readonly messages: ParsedMail[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly server: SMTPServer;

  constructor(credentials?: { user: string; password: string }) {
    this.server = new SMTPServer({
      logger: false,
      // Plain SMTP on loopback: the appliance allows it there, and a test certificate would add nothing.
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authOptional: !credentials,
      onAuth(auth, _session, callback) {
        if (auth.username === credentials?.user && auth.password === credentials?.password)
          callback(null, { user: auth.username });
        else callback(new Error('invalid SMTP user or password'));
      },
      onData: (stream, _session, callback) => {
        simpleParser(stream).then(
          (mail) => {
            this.messages.push(mail);
            this.waiters.splice(0).forEach((wake) => wake());
            callback();
          },
          (error: Error) => callback(error),
        );
      },
    });
  }

  /** Starts listening and returns the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.server.address() as AddressInfo).port;
  }

  /** Waits until the mailbox contains more than `count` messages and returns message number `count`. */
  async nextAfter(count: number, timeoutMs = 15_000): Promise<ParsedMail> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length <= count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no mail arrived within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages[count];
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Returns the recovery token from the link in a recovery mail's text. */
export function tokenFromMail(mail: ParsedMail): string {
  const match = /#\/recover\?token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '');
  if (!match) throw new Error(`the mail has no recovery link: ${mail.text}`);
  return match[1];
}
