import type { z } from 'zod';

import { problems, type FieldError } from './problem';

/**
 * Parses `input` with `schema` or throws a 400 problem that names each bad
 * field. Body fields are named by their path in the JSON body (`title`,
 * `tags.1`); path and query parameters carry a prefix (`params.id`,
 * `query.status`) because they share names with body fields.
 */
export function validate<T extends z.ZodType>(
  schema: T,
  input: unknown,
  where: string,
): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;

  const errors = fieldErrorsOf(
    result.error.issues,
    (path) => [...(where === 'body' ? [] : [where]), ...path.map(String)].join('.') || where,
  );
  const detail = errors.map((error) => `${error.field}: ${error.message}`).join('; ');
  throw problems.invalidRequest(detail, errors);
}

/** Turns zod issues into field errors; `fieldOf` names the field at an issue's path. */
export function fieldErrorsOf(
  issues: readonly z.core.$ZodIssue[],
  fieldOf: (path: PropertyKey[]) => string,
): FieldError[] {
  return issues.flatMap((issue) =>
    // An unknown key is reported at its own path, so a client sees which field to drop.
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          field: fieldOf([...issue.path, key]),
          message: 'is not a known field; remove it',
        }))
      : [{ field: fieldOf(issue.path), message: plainMessage(issue) }],
  );
}

/** Above this many allowed values, a message names a few instead of all of them. */
const maxListedValues = 8;

/**
 * Rewords zod's default messages ("Invalid input: expected string, received
 * undefined") as the field rules the API documents. Messages a schema sets
 * itself are kept as they are.
 */
function plainMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.message.startsWith('Invalid input')) {
    if (/received undefined$/.test(issue.message)) return 'is required';
    const article = /^[aeiou]/.test(issue.expected) ? 'an' : 'a';
    return `must be ${article} ${issue.expected}`;
  }

  if (issue.code === 'invalid_value' && issue.message.startsWith('Invalid option')) {
    const values = issue.values.map((value) => JSON.stringify(value));
    return values.length <= maxListedValues
      ? `must be one of ${values.join(', ')}`
      : `must be one of ${values.length} allowed values, such as ${values.slice(0, 3).join(', ')}`;
  }
  return issue.message;
}
