/** Path prefix of the appliance REST API, served from the same origin as the console. */
export const API_BASE = '/api/v1';

/** Identifier of a stored record; the API contract does not fix whether it is a string or a number. */
export type Id = string | number;

/** One invalid request field, as listed in the `errors` member of a problem details response. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** RFC 9457 problem details, the error body of every failed API request. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: FieldProblem[];
}

/** HTTP status used in a synthesised problem when no response arrived at all. */
export const STATUS_UNREACHABLE = 0;

/** Failure of an API request, carrying the problem details to show to the user. */
export class ApiError extends Error {
  readonly problem: ProblemDetails;

  constructor(problem: ProblemDetails) {
    super(problem.detail ?? problem.title);
    this.name = 'ApiError';
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }
}

type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Options of one API request. */
export interface RequestOptions {
  signal?: AbortSignal;
  /**
   * Keeps a 401 response from ending the session in the console. The auth endpoints set
   * it because there a 401 means bad credentials or no session yet.
   */
  ignoreUnauthorized?: boolean;
}

let unauthorizedHandler: (() => void) | undefined;

/** Registers the function that runs when any other request returns 401, meaning the session ended. */
export function setUnauthorizedHandler(handler: () => void): void {
  unauthorizedHandler = handler;
}

/**
 * Sends a JSON request to the appliance API and returns the parsed JSON body, or undefined
 * for 204. Throws ApiError with problem details for an error status, a network failure or
 * a body that is not JSON. An aborted request rejects with the fetch AbortError unchanged.
 */
export async function apiRequest<T>(
  method: HttpMethod,
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const url = API_BASE + path;
  const headers: Record<string, string> = {
    Accept: 'application/json, application/problem+json',
    // Required by the appliance on cookie-authenticated writes (CSRF protection).
    'X-Requested-With': 'appliance-console',
  };
  const init: RequestInit = {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    signal: options.signal,
  };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (isAbortError(error)) throw error;
    throw new ApiError(unreachableProblem(method, url, STATUS_UNREACHABLE));
  }

  if (response.status === 401 && !options.ignoreUnauthorized) {
    unauthorizedHandler?.();
  }
  if (!response.ok) {
    throw new ApiError(await readProblem(response, method, url));
  }
  if (response.status === 204) {
    return undefined as T;
  }

  return readJson<T>(response, method, url);
}

export function apiGet<T>(path: string, options?: RequestOptions): Promise<T> {
  return apiRequest<T>('GET', path, undefined, options);
}

export function apiPost<T>(path: string, body?: unknown, options?: RequestOptions): Promise<T> {
  return apiRequest<T>('POST', path, body, options);
}

export function apiPut<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
  return apiRequest<T>('PUT', path, body, options);
}

export function apiPatch<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
  return apiRequest<T>('PATCH', path, body, options);
}

export function apiDelete(path: string, options?: RequestOptions): Promise<void> {
  return apiRequest<void>('DELETE', path, undefined, options);
}

/** Appends the non-empty parameters to a path as a query string. */
export function withQuery(path: string, params: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** Encodes an id for use as one path segment. */
export function segment(id: Id): string {
  return encodeURIComponent(String(id));
}

export function isAbortError(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/**
 * Returns the messages that a failed request reported for one request field. Field names
 * are compared by their first path segment after the request part that the appliance puts
 * in front (`body.`, `query.`, `params.`), so `body.tags.1`, `tags[1]` and `/tags/1` all
 * count as `tags`.
 */
export function fieldMessages(error: unknown, field: string): string[] {
  if (!(error instanceof ApiError)) return [];
  return (error.problem.errors ?? [])
    .filter((item) => topLevelField(item.field) === field)
    .map((item) => item.message);
}

/** Tells whether a failed request reported a problem with one request field, for `aria-invalid`. */
export function isFieldInvalid(error: unknown, field: string): boolean {
  return fieldMessages(error, field).length > 0;
}

/** Returns the field problems whose field is not among the ones a form shows next to its inputs. */
export function unplacedFieldProblems(error: unknown, shownFields: string[]): FieldProblem[] {
  if (!(error instanceof ApiError)) return [];
  return (error.problem.errors ?? []).filter(
    (item) => !shownFields.includes(topLevelField(item.field)),
  );
}

/** Request parts that the appliance's validation names before the field itself. */
const REQUEST_PARTS = /^(body|query|params)\./;

function topLevelField(field: string): string {
  const path = field.replace(/^#?\//, '').replace(REQUEST_PARTS, '');
  return path.split(/[./[]/)[0] ?? path;
}

function unreachableProblem(method: HttpMethod, url: string, status: number): ProblemDetails {
  const cause = status === STATUS_UNREACHABLE ? 'no response' : `HTTP ${status}`;
  return {
    type: 'about:blank',
    title: 'Appliance API unreachable',
    status,
    detail:
      `${method} ${url} failed with ${cause}. ` +
      'Check that the appliance service is running and reachable from this computer, then retry.',
  };
}

async function readProblem(
  response: Response,
  method: HttpMethod,
  url: string,
): Promise<ProblemDetails> {
  if ([502, 503, 504].includes(response.status) && !isJson(response)) {
    return unreachableProblem(method, url, response.status);
  }

  const parsed = isJson(response) ? await response.json().catch(() => undefined) : undefined;
  const problem = toProblem(parsed, response.status);
  if (problem) return problem;

  const statusText = response.statusText ? ` ${response.statusText}` : '';
  return {
    type: 'about:blank',
    title: `HTTP ${response.status}${statusText}`,
    status: response.status,
    detail:
      `${method} ${url} failed with HTTP ${response.status}${statusText} and returned no problem details. ` +
      'Check that the console is served by the appliance server.',
  };
}

async function readJson<T>(response: Response, method: HttpMethod, url: string): Promise<T> {
  const contentType = response.headers.get('Content-Type') ?? 'no content type';
  const invalid = (reason: string) =>
    new ApiError({
      type: 'about:blank',
      title: 'Invalid API response',
      status: response.status,
      detail: `${method} ${url} returned ${reason}. Check that the console is served by the appliance server.`,
    });

  if (!isJson(response)) throw invalid(`${contentType} instead of JSON`);
  try {
    return (await response.json()) as T;
  } catch {
    throw invalid('a body that is not valid JSON');
  }
}

function isJson(response: Response): boolean {
  const contentType = response.headers.get('Content-Type') ?? '';
  return /^application\/([\w.+-]+\+)?json\b/i.test(contentType);
}

/** Copies the members of a problem body that have the expected types, or returns undefined. */
function toProblem(value: unknown, status: number): ProblemDetails | undefined {
  if (typeof value !== 'object' || value === null) return undefined;

  const body = value as Record<string, unknown>;
  if (typeof body.title !== 'string' && typeof body.detail !== 'string') return undefined;

  const errors = Array.isArray(body.errors)
    ? body.errors.filter(
        (item): item is FieldProblem =>
          typeof item === 'object' &&
          item !== null &&
          typeof item.field === 'string' &&
          typeof item.message === 'string',
      )
    : undefined;

  return {
    type: typeof body.type === 'string' ? body.type : 'about:blank',
    title: typeof body.title === 'string' ? body.title : `HTTP ${status}`,
    status: typeof body.status === 'number' ? body.status : status,
    detail: typeof body.detail === 'string' ? body.detail : undefined,
    instance: typeof body.instance === 'string' ? body.instance : undefined,
    errors,
  };
}
