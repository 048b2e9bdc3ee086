// The Functions app's entry point (package.json `main`): importing a feature file registers its triggers.
import './startup';
import './health.http';
import './api.http';
import './gateway.http';
import './runLifecycle.orchestrator';
import './runLifecycle.activities';
import './signing';
import './workspaceLifecycle.orchestrator';
import './workspaceLifecycle.activities';
import './sweep';
import './runQueue';
import './outbox';
import './backup';
import './hostChannel.http';
