// Signed per-machine fleet commands as a plug-in: polled on a timer from start() until stop(). What a
// command does (pull, diagnostics, reimage) is handed in by the agent as actions.
import { fleetMethods, type FleetCommandRecord } from '../../common/contract/fleet';
import type { FeaturePlugin } from '../runtime/plugin';
import { createFleetCommands } from './commands';

export function createFleetPlugin(deps: Parameters<typeof createFleetCommands>[0]): FeaturePlugin<typeof fleetMethods, FleetCommandRecord[]> & { service: ReturnType<typeof createFleetCommands> } {
  const fleet = createFleetCommands(deps);
  return {
    name: 'fleet',
    contract: fleetMethods,
    service: fleet,
    handlers: {
      'fleet.poll': async () => ({ record: await fleet.poll() }),
    },
    status: () => fleet.history(),
    start: () => fleet.start(),
    async stop() {
      fleet.stop();
    },
  };
}
