import type { TestProject } from 'vitest/node';
import { startAzurite } from '../../localhost/azuriteProcess';

declare module 'vitest' {
  export interface ProvidedContext {
    azuriteConnectionString: string;
  }
}

/** One in-memory Azurite for the whole test run; test files isolate themselves by table/queue/container names. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const azurite = await startAzurite({ projectRoot: process.cwd() });
  project.provide('azuriteConnectionString', azurite.connectionString);
  return () => azurite.stop();
}
