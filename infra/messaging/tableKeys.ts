import { RestError } from '@azure/data-tables';

export const statusOf = (error: unknown): number | undefined => (error instanceof RestError ? error.statusCode : undefined);

/**
 * A key part free of the characters Table storage forbids in keys (`/ \ # ?`, control characters): keeps
 * `[A-Za-z0-9_.-]` and writes every other UTF-16 unit as `~xxxx`, so distinct inputs stay distinct.
 */
export function keyPart(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    out += /[A-Za-z0-9_.-]/.test(ch) ? ch : `~${text.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  return out;
}
