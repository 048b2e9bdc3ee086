import { app } from '@azure/functions';
import { apiRoutes } from './apiRoutes';
import { SettingsError } from './settings';
import { getServices } from './composition';
import { invokeApiRoute } from './http/apiRoute';
import { describeUnexpected, problemResponse } from './http/problem';

for (const route of apiRoutes) {
  app.http(route.name, {
    route: route.route,
    methods: [route.method],
    authLevel: 'anonymous',
    ...(route.extraInputs ? { extraInputs: [...route.extraInputs] } : {}),
    handler: async (request, context) => {
      try {
        return await invokeApiRoute(route, await getServices(), request, context);
      } catch (error) {
        const reason = error instanceof SettingsError ? error.message : describeUnexpected(error);
        context.error(`${route.name}: the app could not start its services: ${reason}`);
        return problemResponse(503, 'APP.NOT_READY', 'The service is not configured correctly; see the host log.');
      }
    },
  });
}
