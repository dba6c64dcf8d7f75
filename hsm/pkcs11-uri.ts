/** Attributes of an RFC 7512 PKCS#11 URI that name one object on one token. */
export interface Pkcs11ObjectLocator {
  token: string;
  object: string;
  type: 'secret-key' | 'private-key' | 'public-key' | 'cert' | 'data';
}

/**
 * Percent-encodes every byte outside the RFC 3986 unreserved set. RFC 7512
 * allows any character of a path attribute value to be percent-encoded, so
 * this is valid even where a character needs no encoding.
 */
function encodeValue(value: string): string {
  return Array.from(Buffer.from(value, 'utf8'))
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9\-._~]/.test(char)
        ? char
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
}

/** Formats an RFC 7512 URI such as `pkcs11:token=appliance;object=vault-master;type=secret-key`. */
export function formatPkcs11Uri(locator: Pkcs11ObjectLocator): string {
  return `pkcs11:token=${encodeValue(locator.token)};object=${encodeValue(locator.object)};type=${locator.type}`;
}
