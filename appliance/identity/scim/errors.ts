import { ProblemError } from '../../http/problem';

/** SCIM error types (RFC 7644 section 3.12, table 9) that this server returns. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue';

const codePrefix = 'scim_';

/** Creates a SCIM request error: a problem (400 unless `status` is given) whose code carries the SCIM error type. */
export function scimError(scimType: ScimType, detail: string, status = 400): ProblemError {
  return new ProblemError(status, `${codePrefix}${scimType}`, 'Invalid SCIM request', detail);
}

/** Maps a problem to its SCIM error type; undefined when none fits (401, 403, 404, 5xx). */
export function scimTypeOf(code: string): ScimType | undefined {
  if (code.startsWith(codePrefix)) return code.slice(codePrefix.length) as ScimType;
  if (code === 'invalid_request') return 'invalidValue';
  if (code === 'malformed_json') return 'invalidSyntax';
  if (code === 'conflict') return 'uniqueness';
  return undefined;
}
