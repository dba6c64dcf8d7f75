import { scimError } from './errors';

/** A parsed `attribute eq "value"` filter, the one form this server supports. */
export interface EqualityFilter {
  /** The attribute name in lower case, because SCIM attribute names are case-insensitive. */
  attribute: string;
  value: string;
}

const equalityPattern = /^\s*([A-Za-z][\w.]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$/i;

/**
 * Parses a list filter of the form `attribute eq "value"` for one of
 * `attributes`. Any other operator, a logical expression or another attribute
 * is a 400 with scimType invalidFilter that names the supported forms.
 */
export function parseFilter(
  raw: string | undefined,
  attributes: readonly string[],
): EqualityFilter | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;

  const match = equalityPattern.exec(raw);
  const supported = `supported: ${attributes.map((name) => `${name} eq "value"`).join(' or ')}`;
  if (!match)
    throw scimError(
      'invalidFilter',
      `filter: ${JSON.stringify(raw)} is not supported; ${supported}.`,
    );

  const attribute = match[1].toLowerCase();
  if (!attributes.some((name) => name.toLowerCase() === attribute))
    throw scimError(
      'invalidFilter',
      `filter: the attribute ${match[1]} cannot be filtered on; ${supported}.`,
    );

  let value: string;
  try {
    value = JSON.parse(`"${match[2]}"`) as string;
  } catch {
    throw scimError(
      'invalidFilter',
      `filter: the value of ${match[1]} is not a valid JSON string.`,
    );
  }
  return { attribute, value };
}
