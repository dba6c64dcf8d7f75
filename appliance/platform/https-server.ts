import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

import { ensureSelfSignedCertificate } from './tls';

/**
 * Serves `app` over HTTPS with TLS 1.3 as the minimum version, using the
 * certificate in `tlsDir` (created self-signed when absent). Resolves once
 * the server listens; port 0 picks a free port.
 */
export async function listenHttps(
  app: RequestListener,
  options: { tlsDir: string; host: string; port: number },
): Promise<{ server: https.Server; url: string; certFile: string }> {
  const certificate = ensureSelfSignedCertificate(options.tlsDir);
  const server = https.createServer(
    {
      key: fs.readFileSync(certificate.keyFile),
      cert: fs.readFileSync(certificate.certFile),
      minVersion: 'TLSv1.3',
    },
    app,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });

  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `https://${host}:${address.port}`, certFile: certificate.certFile };
}
