/** Attributes of an RFC 7512 PKCS#11 URI that name one object on one token. */
export interface Pkcs11ObjectLocator {
  token: string;
  object: string;
  /** CKA_ID; omitted when the label alone names the object. */
  id?: Buffer;
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
  const id = locator.id ? `;id=${encodeBytes(locator.id)}` : '';
  return `pkcs11:token=${encodeValue(locator.token)};object=${encodeValue(locator.object)}${id};type=${locator.type}`;
}

/** Percent-encodes every byte, as RFC 7512 writes CKA_ID. */
function encodeBytes(bytes: Buffer): string {
  return Array.from(bytes)
    .map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)
    .join('');
}

/**
 * Parses the path attributes of an RFC 7512 URI that formatPkcs11Uri()
 * produced; returns undefined for anything else, so callers fail closed.
 */
export function parsePkcs11Uri(uri: string): Pkcs11ObjectLocator | undefined {
  if (!uri.startsWith('pkcs11:')) return undefined;

  const attributes = new Map<string, string>();
  for (const part of uri.slice('pkcs11:'.length).split(';')) {
    const separator = part.indexOf('=');
    if (separator < 1) return undefined;
    attributes.set(part.slice(0, separator), part.slice(separator + 1));
  }

  const token = attributes.get('token');
  const object = attributes.get('object');
  const type = attributes.get('type');
  const id = attributes.get('id');
  if (token === undefined || object === undefined || type === undefined) return undefined;
  if (!['secret-key', 'private-key', 'public-key', 'cert', 'data'].includes(type)) return undefined;

  try {
    return {
      token: decodeURIComponent(token),
      object: decodeURIComponent(object),
      ...(id === undefined ? {} : { id: decodeBytes(id) }),
      type: type as Pkcs11ObjectLocator['type'],
    };
  } catch {
    return undefined;
  }
}

function decodeBytes(value: string): Buffer {
  if (!/^(%[0-9A-Fa-f]{2})*$/.test(value)) throw new URIError(`invalid CKA_ID encoding "${value}"`);
  return Buffer.from(value.replace(/%/g, ''), 'hex');
}
