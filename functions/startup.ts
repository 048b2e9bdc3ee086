import { app } from '@azure/functions';
import { appSettings } from './settings';

// Every setting is checked once as the app starts, so a malformed one stops the start in one line naming it
// (the local host prints it and exits) instead of the app answering 503 on every route later.
app.hook.appStart(() => {
  appSettings();
});
