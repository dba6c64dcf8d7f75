/** Host names that mean this machine, where plain http to a peer cannot leave the host. */
export const loopbackHosts = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Builds the start-up error of one setting; each sign-in source has its own error class. */
export type SettingError = (setting: string, problem: string) => Error;

/** Parses an absolute URL from the setting `name`. */
export function parseSettingUrl(name: string, raw: string, fail: SettingError): URL {
  try {
    return new URL(raw);
  } catch {
    throw fail(name, `${JSON.stringify(raw)} is not an absolute URL.`);
  }
}

/** Parses a URL that must be https; plain http is accepted only on a loopback address. */
export function httpsOrLoopbackUrl(name: string, raw: string, fail: SettingError): URL {
  const url = parseSettingUrl(name, raw, fail);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && loopbackHosts.has(url.hostname)) return url;
  throw fail(
    name,
    `${JSON.stringify(raw)} must use https (http only on 127.0.0.1, [::1] or localhost).`,
  );
}

/** Parses a URL the browser is sent back to: https and without a #fragment. */
export function httpsCallbackUrl(name: string, raw: string, fail: SettingError): URL {
  const url = parseSettingUrl(name, raw, fail);
  if (url.protocol !== 'https:' || url.hash)
    throw fail(name, `${JSON.stringify(raw)} must be an https URL without a #fragment.`);
  return url;
}
