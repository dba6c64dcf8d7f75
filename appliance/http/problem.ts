/**
 * RFC 9457 problem details. Every error the API returns is one of these; the
 * `type` URIs are stable identifiers clients may switch on.
 */
export interface FieldError {
  field: string;
  message: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: FieldError[];
}

const typeBase = 'urn:prompt-bank-appliance:problem:';

/** An error that maps to an HTTP problem response; anything else becomes a generic 500. */
export class ProblemError extends Error {
  /** Content-Type of the response; subclasses for other error formats (OAuth) override it. */
  readonly mediaType: string = 'application/problem+json';

  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    readonly errors?: FieldError[],
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  toBody(instance?: string): ProblemBody {
    const body: ProblemBody = {
      type: typeBase + this.code,
      title: this.title,
      status: this.status,
      detail: this.detail,
    };
    if (instance) body.instance = instance;
    if (this.errors?.length) body.errors = this.errors;
    return body;
  }
}

export const problems = {
  invalidRequest: (detail: string, errors?: FieldError[]) =>
    new ProblemError(400, 'invalid_request', 'Invalid request', detail, errors),
  malformedJson: () =>
    new ProblemError(
      400,
      'malformed_json',
      'Malformed JSON',
      'The request body is not valid JSON; send a JSON object.',
    ),
  unauthenticated: (detail = 'Sign in first; the request carries no valid session.') =>
    new ProblemError(401, 'unauthenticated', 'Authentication required', detail),
  invalidCredentials: () =>
    new ProblemError(
      401,
      'invalid_credentials',
      'Invalid credentials',
      'The username or password is incorrect.',
    ),
  forbidden: (detail: string) => new ProblemError(403, 'forbidden', 'Forbidden', detail),
  passwordChangeRequired: () =>
    new ProblemError(
      403,
      'password_change_required',
      'Password change required',
      'This account still uses its one-time password; set a new one with POST /api/v1/auth/password.',
    ),
  notFound: (what: string) =>
    new ProblemError(404, 'not_found', 'Not found', `${what} was not found.`),
  /** A 404 whose detail is a whole sentence, for messages that also say where to look. */
  notFoundDetail: (detail: string) => new ProblemError(404, 'not_found', 'Not found', detail),
  conflict: (detail: string) => new ProblemError(409, 'conflict', 'Conflict', detail),
  payloadTooLarge: (limit: number) =>
    new ProblemError(
      413,
      'payload_too_large',
      'Payload too large',
      `The request body exceeds the limit of ${limit} bytes.`,
    ),
  unsupportedMediaType: () =>
    new ProblemError(
      415,
      'unsupported_media_type',
      'Unsupported media type',
      'Send the request body as application/json.',
    ),
  auditUnavailable: () =>
    new ProblemError(
      503,
      'audit_unavailable',
      'Audit trail unavailable',
      'The audit record could not be written, so the request was refused and nothing was changed. Check the database and the HSM, then retry.',
    ),
  hsmUnavailable: (detail: string) =>
    new ProblemError(
      503,
      'hsm_unavailable',
      'HSM unavailable',
      `${detail} The request was refused; nothing was changed.`,
    ),
  searchUnavailable: (detail: string) =>
    new ProblemError(503, 'search_unavailable', 'Search engine unavailable', detail),
  internal: () =>
    new ProblemError(
      500,
      'internal_error',
      'Internal error',
      'The server failed to handle the request; the error was logged with this request id.',
    ),
};
