/**
 * The run aggregate, one concern per file: its vocabulary and events (`runEvents`), state and `evolve`
 * (`runState`), commands and `decide` (`runDecisions`), and the status projection (`runProjection`).
 * Import from here.
 */
export * from './runEvents';
export * from './runState';
export * from './runDecisions';
export * from './runProjection';
