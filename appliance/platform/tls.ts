import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Creates a self-signed certificate for 127.0.0.1 and localhost with the
 * openssl command-line tool, unless one exists. The key file is 0600.
 */
export function ensureSelfSignedCertificate(tlsDir: string): {
  keyFile: string;
  certFile: string;
  created: boolean;
} {
  const keyFile = path.join(tlsDir, 'appliance.key');
  const certFile = path.join(tlsDir, 'appliance.crt');
  if (fs.existsSync(keyFile) && fs.existsSync(certFile))
    return { keyFile, certFile, created: false };

  fs.mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '825',
      '-subj',
      '/CN=prompt-bank-appliance',
      '-addext',
      'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  fs.chmodSync(keyFile, 0o600);
  return { keyFile, certFile, created: true };
}
