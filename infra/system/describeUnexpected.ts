/** A log line for an unexpected error: its class and code only, because its message may quote a request. */
export function describeUnexpected(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const status = (error as { statusCode?: unknown }).statusCode;
    return `${error.name}${typeof code === 'string' ? ` code=${code}` : ''}${typeof status === 'number' ? ` status=${status}` : ''}`;
  }
  return typeof error;
}
