/** Names of the run lifecycle's orchestration, activities and events: constants, never repeated literals. */
export const RUN_LIFECYCLE = 'runLifecycle';
export const CANCEL_EVENT = 'cancel';

export const RUN_ACTIVITY = {
  seed: 'runSeed',
  install: 'runInstall',
  mcp: 'runMcp',
  turn: 'runTurn',
  interrupt: 'runInterrupt',
  teardown: 'runTeardown',
  finish: 'runFinish',
} as const;
