import tls from 'node:tls';

/**
 * Empties the OpenSSL error queue of the calling thread.
 *
 * SoftHSM runs in this process, and its libcrypto calls bind to the OpenSSL
 * that Node links statically, so the two share one per-thread error queue. A
 * failed SoftHSM operation (for example C_UnwrapKey on altered bytes, in
 * SoftHSM 2.6.1 with Node 20's OpenSSL 3.0) leaves entries there, and the next
 * TLS read in Node mistakes them for its own failure and drops that
 * connection. Node offers no direct ERR_clear_error, but creating a secure
 * context clears the queue when it returns.
 */
export function clearOpenSslErrorQueue(): void {
  tls.createSecureContext({});
}
