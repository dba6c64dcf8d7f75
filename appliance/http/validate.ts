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

  const errors: FieldError[] = result.error.issues.map((issue) => ({
    field: [...(where === 'body' ? [] : [where]), ...issue.path.map(String)].join('.') || where,
    message: issue.message,
  }));
  const detail = errors.map((error) => `${error.field}: ${error.message}`).join('; ');
  throw problems.invalidRequest(detail, errors);
}
