// The helpdesk reimage as a plug-in. It reaches the image and the home sync only through the ports
// the agent gives it (ImagePort, HomeSafety).
import { helpdeskMethods, type ReimageStatus } from '../../common/contract/helpdesk';
import type { FeaturePlugin } from '../runtime/plugin';
import { createHelpdeskService, type HelpdeskDeps } from './helpdesk-service';

export function createHelpdeskPlugin(deps: HelpdeskDeps): FeaturePlugin<typeof helpdeskMethods, ReimageStatus> & { service: ReturnType<typeof createHelpdeskService> } {
  const helpdesk = createHelpdeskService(deps);
  return {
    name: 'helpdesk',
    contract: helpdeskMethods,
    service: helpdesk,
    handlers: {
      'helpdesk.plan': () => helpdesk.plan(),
      'helpdesk.reimage': (args) => helpdesk.reimage(args),
      'helpdesk.cancelReimage': () => helpdesk.cancel(),
      'helpdesk.diagnostics': () => helpdesk.diagnostics(),
      'helpdesk.showDiagnostics': () => helpdesk.showDiagnostics(),
    },
    status: () => helpdesk.status(),
    start: () => undefined,
    async stop() {
      helpdesk.stop();
    },
  };
}
