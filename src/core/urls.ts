/** URLs in messages. */

/**
 * The URL with its password hidden (`postgres://colony:***@host`), or the whole user
 * part when it has no name (`redis://***@host`: a bare token or password).
 */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_all, info: string) => {
    const colon = info.indexOf(":");
    return colon > 0 ? `//${info.slice(0, colon)}:***@` : "//***@";
  });
}
