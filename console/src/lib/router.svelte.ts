import { withQuery } from './api';

/** The location inside the console, taken from the URL fragment such as `#/prompts/12?version=3`. */
export interface Route {
  /** Decoded path segments, such as `['prompts', '12']`. */
  segments: string[];
  query: URLSearchParams;
}

function decodeSegment(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function parseHash(hash: string): Route {
  const text = hash.replace(/^#\/?/, '');
  const queryStart = text.indexOf('?');
  const pathText = queryStart === -1 ? text : text.slice(0, queryStart);
  const queryText = queryStart === -1 ? '' : text.slice(queryStart + 1);

  return {
    segments: pathText.split('/').filter(Boolean).map(decodeSegment),
    query: new URLSearchParams(queryText),
  };
}

class HashRouter {
  route = $state<Route>(parseHash(window.location.hash));

  constructor() {
    window.addEventListener('hashchange', () => {
      this.route = parseHash(window.location.hash);
    });
  }

  /**
   * Moves to another console location. With `replace` the current history entry is
   * overwritten, which suits filter changes that the Back button should skip.
   */
  navigate(target: string, options: { replace?: boolean } = {}): void {
    if (options.replace) {
      history.replaceState(history.state, '', target);
      this.route = parseHash(window.location.hash);
    } else {
      window.location.hash = target.replace(/^#/, '');
    }
  }
}

/** The single router of the console; read `router.route` to react to location changes. */
export const router = new HashRouter();

/** Builds a console link such as `#/prompts?folder=3`, leaving out empty query parameters. */
export function href(
  segments: (string | number)[],
  query: Record<string, string | undefined> = {},
): string {
  const path = segments.map((part) => encodeURIComponent(String(part))).join('/');
  return `#/${withQuery(path, query)}`;
}
