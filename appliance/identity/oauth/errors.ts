import { ProblemError } from '../../http/problem';

/** Error codes of RFC 6749 section 5.2 that the token endpoint returns. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope';

const titles: Record<OAuthErrorCode, string> = {
  invalid_request: 'Invalid token request',
  invalid_client: 'Client authentication failed',
  invalid_grant: 'Invalid grant',
  unauthorized_client: 'Unauthorized client',
  unsupported_grant_type: 'Unsupported grant type',
  invalid_scope: 'Invalid scope',
};

/**
 * A token endpoint error. Its body carries `error` and `error_description`
 * (RFC 6749 section 5.2) next to the problem members, and it is sent as
 * application/json because OAuth clients check it (oauth4webapi 3, which
 * openid-client 6 uses, rejects application/problem+json).
 */
export class OAuthError extends ProblemError {
  override readonly mediaType = 'application/json';

  constructor(
    readonly error: OAuthErrorCode,
    description: string,
  ) {
    super(error === 'invalid_client' ? 401 : 400, `oauth_${error}`, titles[error], description);
    this.name = 'OAuthError';
  }

  override toBody(instance?: string) {
    return { error: this.error, error_description: this.detail, ...super.toBody(instance) };
  }
}
