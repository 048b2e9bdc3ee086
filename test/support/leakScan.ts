import type { TableClient } from '@azure/data-tables';

/** The forms a leaked value would most plausibly take in text: raw, base64, base64url, hex. */
export function leakForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  return [value, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex'), JSON.stringify(value).slice(1, -1), encodeURIComponent(value)];
}

export interface LeakHit {
  where: string;
  secret: string;
  form: number;
}

/** Searches each text for every form of every value; returns where it found them (names, never values). */
export function scanTexts(texts: Iterable<{ where: string; text: string }>, secrets: Record<string, string>): LeakHit[] {
  const hits: LeakHit[] = [];
  const forms = Object.entries(secrets).map(([name, value]) => ({ name, forms: leakForms(value) }));
  for (const { where, text } of texts) {
    for (const { name, forms: list } of forms) {
      list.forEach((form, index) => {
        if (form.length >= 8 && text.includes(form)) hits.push({ where, secret: name, form: index });
      });
    }
  }
  return hits;
}

export async function tableTexts(table: TableClient): Promise<Array<{ where: string; text: string }>> {
  const out: Array<{ where: string; text: string }> = [];
  for await (const entity of table.listEntities()) {
    out.push({ where: `${table.tableName}/${entity.partitionKey}/${entity.rowKey}`, text: JSON.stringify(entity) });
  }
  return out;
}
