import { describeHttpFuzz } from '../support/batteryHttpFuzzSuite';

/** The same property as httpBadInput.test.ts, at soak size. */
describeHttpFuzz({ name: 'HTTP bad input (soak)', runs: 20_000, timeoutMs: 600_000 });
