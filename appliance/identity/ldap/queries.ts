import { Filter } from 'ldapts';

/**
 * Fills `{username}` in a filter template with the name escaped as an
 * RFC 4515 assertion value (ldapts' Filter.escape), so `*`, `(`, `)`, `\`
 * and NUL in a name match literally and never change the filter.
 */
export function userFilterFor(template: string, username: string): string {
  return template.replaceAll('{username}', Filter.escape(username));
}

/** Fills `{dn}` in a group filter template with the user's DN escaped as an assertion value. */
export function groupFilterFor(template: string, userDn: string): string {
  return template.replaceAll('{dn}', Filter.escape(userDn));
}

/** Fills `{username}` in a bind DN template with the name escaped as an RFC 4514 attribute value. */
export function bindDnFor(template: string, username: string): string {
  return template.replaceAll('{username}', escapeDnValue(username));
}

/**
 * Escapes an attribute value for a DN string (RFC 4514 section 2.4): the
 * specials `" + , ; < > \` and `=` get a backslash, NUL becomes `\00`, and a
 * leading `#` or space or a trailing space is escaped too.
 */
export function escapeDnValue(value: string): string {
  let escaped = '';
  for (const character of value) {
    if (character === '\0') escaped += '\\00';
    else if ('"+,;<>\\='.includes(character)) escaped += `\\${character}`;
    else escaped += character;
  }
  if (escaped.startsWith('#') || escaped.startsWith(' ')) escaped = `\\${escaped}`;
  if (escaped.endsWith(' ') && !escaped.endsWith('\\ ')) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}

/** Returns the value of a DN's first RDN (`cn=soc,ou=groups,...` → `soc`), or undefined when it has none. */
export function firstRdnValue(dn: string): string | undefined {
  const match = /^[^=,]+=((?:[^,\\]|\\.)*)/.exec(dn);
  return match ? match[1].replace(/\\(.)/g, '$1') : undefined;
}
