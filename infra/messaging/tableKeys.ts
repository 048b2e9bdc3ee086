import { RestError } from '@azure/data-tables';

export const statusOf = (error: unknown): number | undefined => (error instanceof RestError ? error.statusCode : undefined);

/** Key parts are escaped exactly as the event log escapes them (see infra/tables/rowKeys.ts). */
export { escapeKeyPart as keyPart } from '../tables/rowKeys';
