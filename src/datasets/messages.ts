/** Wording shared by the dataset error messages. */

const MAX_QUOTED_LENGTH = 120;

/**
 * A user-supplied name as it appears in a message: JSON-quoted, so control characters, quotes
 * and bidirectional tricks show as escapes, and cut to a readable length.
 */
export function quote(name: string): string {
  const chars = [...name];
  const shown = chars.length > MAX_QUOTED_LENGTH ? `${chars.slice(0, MAX_QUOTED_LENGTH).join('')}…` : name;
  return JSON.stringify(shown).replace(/[\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** `1,234` */
export function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/** `10 MiB`, `1.5 KiB`, `37 bytes` */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(value) : String(Math.round(value * 10) / 10);
  return `${shown} ${units[unit]}`;
}

/** `a, b, c` or, past `max` items, `a, b, c and 7 more`. */
export function listCapped(items: readonly string[], max = 10): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${formatCount(items.length - max)} more`;
}

/** `1 image`, `3 images` */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${formatCount(count)} ${count === 1 ? singular : pluralForm}`;
}

/** Length in Unicode code points, what a user counts as characters. */
export function characterLength(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}
