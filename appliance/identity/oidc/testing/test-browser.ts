import http from 'node:http';
import https from 'node:https';

/** One response as the test browser saw it. */
export interface Page {
  url: URL;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface StoredCookie {
  value: string;
  path: string;
  secure: boolean;
}

/**
 * A small stand-in for a browser in tests. It follows redirects across the
 * provider (http) and the appliance (https, trusting its certificate). It
 * keeps cookies per host name with their Path and Secure attributes, and it
 * submits the first form of a page. It does not apply SameSite rules.
 */
export class TestBrowser {
  private readonly jar = new Map<string, Map<string, StoredCookie>>();

  constructor(private readonly ca: Buffer) {}

  /** GETs `url` and follows redirects until `stopAt` matches a URL or a page is not a redirect. */
  async open(url: string | URL, stopAt?: (next: URL) => boolean): Promise<Page> {
    return this.follow(await this.send('GET', new URL(url)), stopAt);
  }

  /** Fills and posts the first form of `page`, then follows redirects like `open`. */
  async submitForm(
    page: Page,
    fields: Record<string, string>,
    stopAt?: (next: URL) => boolean,
  ): Promise<Page> {
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(page.body);
    if (!form) throw new Error(`no form on ${page.url.href} (HTTP ${page.status})`);

    const values = new URLSearchParams();
    for (const input of form[2].matchAll(/<input[^>]*>/gi)) {
      const name = /name="([^"]*)"/.exec(input[0])?.[1];
      if (name) values.set(name, /value="([^"]*)"/.exec(input[0])?.[1] ?? '');
    }
    for (const [name, value] of Object.entries(fields)) values.set(name, value);

    const action = new URL(decodeEntities(form[1]), page.url);
    return this.follow(await this.send('POST', action, values.toString()), stopAt);
  }

  /** Returns the value of the cookie `name` stored for `host`, if any. */
  cookie(host: string, name: string): string | undefined {
    return this.jar.get(host)?.get(name)?.value;
  }

  /** Sets a cookie as if a server had, for tests that replay or swap cookies. */
  setCookie(host: string, name: string, value: string): void {
    this.cookiesOf(host).set(name, { value, path: '/', secure: true });
  }

  private async follow(page: Page, stopAt?: (next: URL) => boolean): Promise<Page> {
    let current = page;
    for (let hops = 0; hops < 20; hops++) {
      const location = current.headers.location;
      if (current.status < 300 || current.status >= 400 || !location) return current;

      const next = new URL(location, current.url);
      if (stopAt?.(next)) return current;
      current = await this.send('GET', next);
    }
    throw new Error('too many redirects');
  }

  private send(method: string, url: URL, form?: string): Promise<Page> {
    const headers: Record<string, string> = { 'user-agent': 'appliance-oidc-test' };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';

    const transport = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method, headers, ca: this.ca }, (response) => {
        this.store(url, response.headers['set-cookie'] ?? []);
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            url,
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
      request.on('error', reject);
      request.end(form);
    });
  }

  private cookieHeader(url: URL): string {
    const cookies = [...this.cookiesOf(url.hostname)].filter(
      ([, cookie]) =>
        (!cookie.secure || url.protocol === 'https:') && url.pathname.startsWith(cookie.path),
    );
    return cookies.map(([name, cookie]) => `${name}=${cookie.value}`).join('; ');
  }

  private store(url: URL, setCookies: string[]): void {
    const cookies = this.cookiesOf(url.hostname);
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim());
      const split = pair.indexOf('=');
      const name = pair.slice(0, split);
      const value = pair.slice(split + 1);
      const attribute = (key: string) =>
        attributes.find((part) => part.toLowerCase().startsWith(key));

      const expires = attribute('expires=');
      const maxAge = attribute('max-age=');
      const expired =
        (maxAge !== undefined && Number(maxAge.split('=')[1]) <= 0) ||
        (expires !== undefined && Date.parse(expires.split('=')[1]) <= Date.now());
      if (expired) {
        cookies.delete(name);
        continue;
      }
      cookies.set(name, {
        value,
        path: attribute('path=')?.split('=')[1] ?? '/',
        secure: attribute('secure') !== undefined,
      });
    }
  }

  private cookiesOf(host: string): Map<string, StoredCookie> {
    let cookies = this.jar.get(host);
    if (!cookies) {
      cookies = new Map();
      this.jar.set(host, cookies);
    }
    return cookies;
  }
}

function decodeEntities(text: string): string {
  return text
    .replace(/&amp;/g, '&')
    .replace(/&#x2F;/gi, '/')
    .replace(/&quot;/g, '"');
}
