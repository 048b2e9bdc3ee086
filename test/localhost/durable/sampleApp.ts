import { expect, vi } from 'vitest';

/** Talks to the durable-sample fixture app's own HTTP API (which uses df.getClient) on a running local host. */
export class SampleApp {
  constructor(private readonly url: string) {}

  async start(name: string, input?: unknown, instanceId?: string): Promise<string> {
    const query = instanceId ? `?instanceId=${encodeURIComponent(instanceId)}` : '';
    const response = await fetch(`${this.url}/api/orchestrations/${name}${query}`, {
      method: 'POST',
      ...(input !== undefined ? { body: JSON.stringify(input), headers: { 'content-type': 'application/json' } } : {}),
    });
    expect(response.status, await response.clone().text()).toBe(202);
    return ((await response.json()) as { id: string }).id;
  }

  async status(id: string): Promise<{ httpStatus: number; body: Status | undefined }> {
    const response = await fetch(`${this.url}/api/orchestrations/${encodeURIComponent(id)}`);
    return { httpStatus: response.status, body: response.status === 200 ? ((await response.json()) as Status) : undefined };
  }

  async post(id: string, path: string, body?: unknown): Promise<number> {
    const response = await fetch(`${this.url}/api/orchestrations/${encodeURIComponent(id)}/${path}`, {
      method: 'POST',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    await response.arrayBuffer();
    return response.status;
  }

  async purge(id: string): Promise<number> {
    const response = await fetch(`${this.url}/api/orchestrations/${encodeURIComponent(id)}`, { method: 'DELETE' });
    return ((await response.json()) as { instancesDeleted: number }).instancesDeleted;
  }

  async list(runtimeStatus: string): Promise<Status[]> {
    return (await (await fetch(`${this.url}/api/orchestrations?runtimeStatus=${runtimeStatus}`)).json()) as Status[];
  }

  /** Polls until the instance reaches one of `statuses`; the timeout only bounds a hang. */
  async waitFor(id: string, statuses: readonly string[] = ['Completed', 'Failed', 'Terminated'], timeout = 30_000): Promise<Status> {
    let last: Status | undefined;
    await vi.waitFor(
      async () => {
        last = (await this.status(id)).body;
        expect(statuses).toContain(last?.runtimeStatus);
      },
      { timeout, interval: 100 },
    );
    return last!;
  }
}

export interface Status {
  instanceId: string;
  name: string;
  runtimeStatus: string;
  input: unknown;
  output: unknown;
  customStatus: unknown;
}
