import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { encodedForms } from '../../domain/redaction';

/** The forms a leaked value would most plausibly take in text: raw, base64, base64url, hex. */
export function leakForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  return [value, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex'), JSON.stringify(value).slice(1, -1), encodeURIComponent(value)];
}

/**
 * Every form the battery searches for: the redactor's own forms (domain/redaction encodedForms) and, computed
 * independently here so a bug in the redactor's encoder cannot hide a leak from its own test, base64 and
 * base64url at all three byte alignments (the core that does not depend on neighbouring bytes), hex in both
 * cases, URI and JSON escaping. Forms shorter than 8 characters are dropped (they match ordinary text).
 */
export function allLeakForms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms = new Set<string>([...encodedForms(value), ...leakForms(value)]);
  for (const shift of [0, 1, 2]) {
    // Prefixing `shift` bytes moves the value to each alignment; the characters touching the prefix or the end mix
    // in other bytes, so keep only the characters fully determined by the value's bytes.
    const padded = Buffer.concat([Buffer.alloc(shift), bytes]);
    for (const encoding of ['base64', 'base64url'] as const) {
      const text = padded.toString(encoding).replace(/=+$/, '');
      const start = Math.ceil((shift * 8) / 6);
      const end = Math.floor(((shift + bytes.length) * 8) / 6);
      forms.add(text.slice(start, end));
    }
  }
  forms.add(bytes.toString('hex').toUpperCase());
  forms.add(JSON.stringify(value));
  forms.add(encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  return [...forms].filter((f) => f.length >= 8);
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

/** What one scan read and found: bytes and items per source, and every hit (where and which secret, never a value). */
export interface LeakReport {
  bytes: number;
  items: number;
  sources: Record<string, { bytes: number; items: number }>;
  hits: LeakHit[];
}

/** A scanner that accumulates one report across sources; forms are computed once per secret. */
export class LeakScanner {
  private readonly forms: { name: string; forms: Buffer[] }[];
  readonly report: LeakReport = { bytes: 0, items: 0, sources: {}, hits: [] };

  constructor(secrets: Record<string, string>) {
    this.forms = Object.entries(secrets).map(([name, value]) => ({ name, forms: allLeakForms(value).map((f) => Buffer.from(f, 'utf8')) }));
  }

  /** Scans one item (bytes or text) from `source`; `where` names it in a hit. */
  scan(source: string, where: string, content: Buffer | string): void {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const entry = (this.report.sources[source] ??= { bytes: 0, items: 0 });
    entry.bytes += bytes.length;
    entry.items += 1;
    this.report.bytes += bytes.length;
    this.report.items += 1;
    for (const { name, forms } of this.forms) {
      forms.forEach((form, index) => {
        if (bytes.indexOf(form) !== -1) this.report.hits.push({ where: `${source}:${where}`, secret: name, form: index });
      });
    }
  }

  /** Every row of every table on the account. */
  async tables(connectionString: string): Promise<void> {
    const service = TableServiceClient.fromConnectionString(connectionString, { allowInsecureConnection: true });
    for await (const table of service.listTables()) {
      const name = table.name ?? '';
      const client = TableClient.fromConnectionString(connectionString, name, { allowInsecureConnection: true });
      for await (const row of client.listEntities()) this.scan('table', `${name}/${String(row.partitionKey)}/${String(row.rowKey)}`, JSON.stringify(row));
    }
  }

  /** Every blob of every container on the account. */
  async blobs(connectionString: string): Promise<void> {
    const service = BlobServiceClient.fromConnectionString(connectionString);
    for await (const container of service.listContainers()) {
      const client = service.getContainerClient(container.name);
      for await (const blob of client.listBlobsFlat()) {
        this.scan('blob', `${container.name}/${blob.name}`, await client.getBlobClient(blob.name).downloadToBuffer());
      }
    }
  }

  /**
   * Every queue message on the account, peeked (not dequeued, so the scan changes nothing). A peek sees at most
   * 32 messages per queue; the on-disk scan of a persistent Azurite (`files`) sees the rest.
   */
  async queues(connectionString: string): Promise<void> {
    const service = QueueServiceClient.fromConnectionString(connectionString);
    for await (const queue of service.listQueues()) {
      const peeked = await service.getQueueClient(queue.name).peekMessages({ numberOfMessages: 32 });
      for (const message of peeked.peekedMessageItems) this.scan('queue', `${queue.name}/${message.messageId}`, message.messageText);
      if (peeked.peekedMessageItems.length === 0) this.scan('queue', `${queue.name}/(empty)`, '');
    }
  }

  /** Every regular file under `root` (symlinks are not followed; a vanished file is skipped). */
  files(source: string, root: string): void {
    const walk = (dir: string): void => {
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        return;
      }
      for (const entry of entries) {
        const file = path.join(dir, entry);
        try {
          const stat = lstatSync(file);
          if (stat.isDirectory()) walk(file);
          else if (stat.isFile()) this.scan(source, path.relative(root, file), readFileSync(file));
        } catch {
          // removed while we walked (a teardown in progress elsewhere): nothing left to leak
        }
      }
    };
    walk(root);
  }

  /** One line for CI output: bytes, items and hits (never a value). */
  summary(label: string): string {
    const { bytes, items, hits, sources } = this.report;
    const parts = Object.entries(sources).map(([s, v]) => `${s} ${v.items}/${v.bytes} B`).join(', ');
    return `leak scan ${label}: ${bytes} bytes in ${items} items (${parts}); hits ${hits.length}`;
  }
}
