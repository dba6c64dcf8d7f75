import nodemailer, { type Transporter } from 'nodemailer';

import type { RecoverySettings } from './settings';

/** Content of a recovery mail: the account, the link and how many minutes the link stays valid. */
export interface RecoveryMail {
  to: string;
  username: string;
  link: string;
  validMinutes: number;
}

/**
 * Sends recovery mail through the configured SMTP server. The transport
 * never logs (nodemailer's logger stays off), because the message text contains
 * the recovery link.
 */
export class RecoveryMailer {
  private readonly transport: Transporter;

  constructor(private readonly settings: RecoverySettings['smtp']) {
    this.transport = nodemailer.createTransport({
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      requireTLS: settings.requireTls,
      auth: settings.auth ? { user: settings.auth.user, pass: settings.auth.password } : undefined,
      // Bounds a send to an unreachable or stalled server; guessed values, in milliseconds.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
      logger: false,
    });
  }

  /** Sends one recovery mail; rejects with the transport error when the server refuses or cannot be reached. */
  async send(mail: RecoveryMail): Promise<void> {
    await this.transport.sendMail({
      from: this.settings.from,
      to: mail.to,
      subject: 'Password recovery for your prompt bank appliance account',
      text: [
        `Someone asked to reset the password of the account "${mail.username}" on the prompt bank appliance.`,
        '',
        `Open this link within ${mail.validMinutes} minutes to choose a new password. The link works once:`,
        '',
        mail.link,
        '',
        'If you did not ask for this, ignore this mail: your password stays as it is.',
        'If your account uses a second factor, you still need it at the next sign-in.',
      ].join('\n'),
    });
  }
}
