// OS image updates as a plug-in: status, check, pull and rollback through tabula-helper, on the
// schedule's rhythm and when the network comes up. Nothing runs (no pkexec, no nmcli) before start().
import { imageMethods, type ImageUpdateStatus } from '../../common/contract/image';
import type { FeaturePlugin } from '../runtime/plugin';
import { createImageService, type ImageServiceDeps } from './image-service';

export interface ImagePluginDeps extends ImageServiceDeps {
  /** Reports network-up (the agent passes `nmcli monitor`); returns a stop function. */
  watchNetwork: (onUp: () => void) => () => void;
}

export function createImagePlugin(deps: ImagePluginDeps): FeaturePlugin<typeof imageMethods, ImageUpdateStatus> & { service: ReturnType<typeof createImageService> } {
  const image = createImageService(deps);
  let stopNetworkWatch = () => undefined as void;
  return {
    name: 'image',
    contract: imageMethods,
    service: image,
    handlers: {
      'image.status': () => image.status(),
      'image.check': () => image.check(),
      'image.pull': () => image.pull(),
      'image.rollback': () => image.rollback(),
    },
    status: () => image.status(),
    start() {
      void image.start();
      stopNetworkWatch = deps.watchNetwork(() => void image.networkUp());
    },
    async stop() {
      image.stop();
      stopNetworkWatch();
      await image.whenIdle();
    },
  };
}
