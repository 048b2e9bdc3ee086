import { app, type HttpResponseInit } from '@azure/functions';

export async function health(): Promise<HttpResponseInit> {
  return { status: 200, jsonBody: { status: 'ok' } };
}

app.http('health', { route: 'health', methods: ['GET'], authLevel: 'anonymous', handler: health });
