import { AppendTooLargeError } from './storeErrors';

/**
 * Table storage caps a string property at 64 KiB of UTF-16 (32,768 code units) and an entity at 1 MiB, so
 * long text is split across numbered properties of the same entity: `<name>Parts`, `<name>0`, `<name>1`...
 * 14 parts of 32,000 units keep the worst case (every unit two bytes) near 900 KiB, under the entity limit.
 */
export const PART_UNITS = 32_000;
export const MAX_PARTS = 14;
export const MAX_TEXT_UNITS = PART_UNITS * MAX_PARTS;

export function assertTextFits(what: string, text: string): void {
  if (text.length > MAX_TEXT_UNITS) throw new AppendTooLargeError(what, text.length, MAX_TEXT_UNITS);
}

export function toParts(name: string, text: string): Record<string, string | number> {
  assertTextFits(name, text);
  const props: Record<string, string | number> = {};
  let index = 0;
  for (let start = 0; start < text.length || index === 0; index++) {
    let end = Math.min(text.length, start + PART_UNITS);
    // Never cut a surrogate pair in two: each half alone is not a valid string for the service.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    props[`${name}${index}`] = text.slice(start, end);
    start = end;
  }
  props[`${name}Parts`] = index;
  return props;
}

export function fromParts(name: string, entity: Readonly<Record<string, unknown>>): string {
  const count = entity[`${name}Parts`];
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_PARTS)
    throw new Error(`Entity has no valid ${name}Parts`);
  let text = '';
  for (let i = 0; i < count; i++) {
    const part = entity[`${name}${i}`];
    if (typeof part !== 'string') throw new Error(`Entity lacks ${name}${i}`);
    text += part;
  }
  return text;
}
