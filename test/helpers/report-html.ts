/** Small readers of the rendered report for tests (regexes over our own, regular markup). */

/** The inner HTML of the results-table row of a method, or null. */
export function methodRow(html: string, key: string): string | null {
  const rows = [...html.matchAll(/<tr class="[^"]*" data-method="([^"]*)">([\s\S]*?)<\/tr>/g)].filter((m) => m[1] === key);
  if (rows.length !== 1) return null;
  return rows[0][2];
}

/** Count of results-table rows (one per method). */
export function methodRowCount(html: string): number {
  return [...html.matchAll(/<tr class="[^"]*" data-method="/g)].length;
}

/** The cell of a column in a row's inner HTML: its visible number text and whether it is marked best. */
export function cell(row: string, col: string): { text: string; best: boolean } {
  const m = new RegExp(`<td class="num" data-col="${col}">([\\s\\S]*?)</td>`).exec(row);
  if (!m) throw new Error(`no cell ${col}`);
  const inner = m[1].replace(/<span class="sub">[\s\S]*?<\/span>/, '');
  return { text: inner.replace(/<[^>]+>/g, '').trim(), best: /<strong class="best">/.test(inner) };
}

/** Occurrences of a string. */
export function countOf(text: string, needle: string): number {
  return text.split(needle).length - 1;
}
