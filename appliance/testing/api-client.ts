import https from 'node:https';

/** A response as tests and the CLI see it: status, headers and parsed JSON (or undefined). */
export interface ApiResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/**
 * A small HTTPS client for the appliance API that trusts the appliance's own
 * certificate and carries the session cookie like a browser would.
 */
export class ApiClient {
  private cookie?: string;

  constructor(
    readonly baseUrl: string,
    private readonly ca: Buffer,
  ) {}

  get<T = any>(path: string): Promise<ApiResponse<T>> {
    return this.request<T>('GET', path);
  }

  post<T = any>(path: string, body?: unknown): Promise<ApiResponse<T>> {
    return this.request<T>('POST', path, body);
  }

  patch<T = any>(path: string, body?: unknown): Promise<ApiResponse<T>> {
    return this.request<T>('PATCH', path, body);
  }

  delete<T = any>(path: string): Promise<ApiResponse<T>> {
    return this.request<T>('DELETE', path);
  }

  /** Sends a request; `body` is serialised as JSON unless it is already a string or Buffer. */
  request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const payload =
      body === undefined
        ? undefined
        : typeof body === 'string' || Buffer.isBuffer(body)
          ? body
          : JSON.stringify(body);
    const url = new URL(`/api/v1${path}`, this.baseUrl);

    return new Promise((resolve, reject) => {
      const request = https.request(
        url,
        {
          method,
          ca: this.ca,
          headers: {
            accept: 'application/json',
            // The CSRF header the appliance requires on cookie-authenticated writes.
            'x-requested-with': 'appliance-console',
            ...(payload !== undefined
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
              : {}),
            ...(this.cookie ? { cookie: this.cookie } : {}),
            ...headers,
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            this.keepSessionCookie(response.headers['set-cookie']);
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: (text ? safeJson(text) : undefined) as T,
            });
          });
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
  }

  private keepSessionCookie(setCookie: string[] | undefined) {
    for (const line of setCookie ?? []) {
      const pair = line.split(';')[0];
      const [name, value] = pair.split('=');
      if (!name.startsWith('__Host-appliance_session')) continue;
      this.cookie = value ? pair : undefined;
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
